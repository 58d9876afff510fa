//! The pack's HTML: self-contained pages (inline CSS, no scripts, no
//! network), printable, with every value from the trail escaped.

use std::fmt::Write;

/// Escape text for HTML element content and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A relative link target that is safe in an `href`: only the characters
/// session ids and pack file names use; anything else is percent-encoded.
pub fn href(path: &str) -> String {
    let mut out = String::new();
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Shared style: readable on screen, sober on paper.
const STYLE: &str = r#"
:root { --ink:#1c2430; --muted:#5b6675; --line:#d9dee5; --soft:#f4f6f9; --accent:#1f4e79;
        --ok:#1d6b3a; --okbg:#e6f4ea; --bad:#9b1c1c; --badbg:#fdecec; --warn:#8a5a00; --warnbg:#fff5e0; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; color: var(--ink); background: #fff;
       font: 14px/1.5 -apple-system, "Segoe UI", "Helvetica Neue", Arial, "Liberation Sans", sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 28px 32px 48px; }
header.doc { border-bottom: 3px solid var(--accent); padding-bottom: 14px; margin-bottom: 22px; }
header.doc .kicker { text-transform: uppercase; letter-spacing: .08em; font-size: 11px; color: var(--muted); }
h1 { font-size: 26px; margin: 4px 0 6px; }
h2 { font-size: 19px; margin: 34px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line);
     color: var(--accent); }
h3 { font-size: 15px; margin: 20px 0 6px; }
p { margin: 6px 0 10px; }
.muted, .note { color: var(--muted); }
.note { font-size: 12.5px; }
a { color: var(--accent); }
code, .mono, pre { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 12.5px; }
pre { white-space: pre-wrap; word-break: break-word; margin: 0; }
table { width: 100%; border-collapse: collapse; margin: 8px 0 14px; }
th, td { text-align: left; vertical-align: top; padding: 5px 8px; border-bottom: 1px solid var(--line); }
th { background: var(--soft); font-weight: 600; font-size: 12.5px; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.sql { max-width: 420px; word-break: break-word; }
tr { break-inside: avoid; }
.verdict { border-radius: 8px; padding: 14px 18px; margin: 14px 0 18px; border: 1px solid; }
.verdict.ok { background: var(--okbg); border-color: #9fd0ad; }
.verdict.bad { background: var(--badbg); border-color: #eaa; }
.verdict.warn { background: var(--warnbg); border-color: #e6c27a; }
.verdict > strong { font-size: 16px; }
.ts { white-space: nowrap; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); gap: 10px; margin: 12px 0; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; background: #fff; }
.card .n { font-size: 24px; font-weight: 650; font-variant-numeric: tabular-nums; }
.card .l { font-size: 12px; color: var(--muted); }
.card.alert .n { color: var(--bad); }
.figures { display: grid; grid-template-columns: 1fr 1fr; gap: 18px; align-items: start; }
figure { margin: 10px 0; border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; break-inside: avoid; }
figcaption { font-size: 12.5px; color: var(--muted); margin-top: 4px; }
svg { display: block; width: 100%; height: auto; }
.tag { display: inline-block; font-size: 11px; font-weight: 600; padding: 1px 7px; border-radius: 10px;
       background: var(--soft); border: 1px solid var(--line); white-space: nowrap; }
.tag.block, .tag.blocked, .tag.denied, .tag.deny, .tag.bad { background: var(--badbg); border-color: #eaa; color: var(--bad); }
.tag.hold, .tag.held, .tag.request, .tag.expired, .tag.withdrawn, .tag.warn { background: var(--warnbg); border-color: #e6c27a; color: var(--warn); }
.tag.allow, .tag.approved, .tag.approve, .tag.executed, .tag.ok, .tag.decision { background: var(--okbg); border-color: #9fd0ad; color: var(--ok); }
.identity { border: 1px solid var(--line); border-radius: 8px; padding: 4px 14px 8px; margin: 12px 0; break-inside: avoid-page; }
.identity h3 { margin-top: 10px; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 2px 14px; margin: 8px 0; }
dl.meta dt { color: var(--muted); }
dl.meta dd { margin: 0; word-break: break-word; }
nav.toc { background: var(--soft); border-radius: 8px; padding: 10px 16px; margin: 10px 0 6px; font-size: 13px; }
nav.toc a { display: inline-block; margin-right: 14px; white-space: nowrap; }
ul.problems li { margin: 4px 0; }
footer { margin-top: 36px; padding-top: 10px; border-top: 1px solid var(--line); color: var(--muted); font-size: 12px; }
@media (max-width: 800px) { .figures { grid-template-columns: 1fr; } main { padding: 16px; } }
@page { size: A4; margin: 14mm 12mm; }
@media print {
  body { font-size: 10.5pt; }
  main { max-width: none; padding: 0; }
  nav.toc { display: none; }
  a { color: inherit; text-decoration: none; }
  h2 { break-after: avoid; }
  section.page { break-before: page; }
  .figures { grid-template-columns: 1fr 1fr; }
  th { background: #eee !important; -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  .verdict, .tag, .card { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"#;

/// A complete page around `body` (already HTML).
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; img-src data:\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n",
        esc(title)
    )
}

/// A `<span class="tag …">`.
pub fn tag(class: &str, text: &str) -> String {
    format!(
        "<span class=\"tag {}\">{}</span>",
        href(class).replace('/', ""),
        esc(text)
    )
}

/// Thousands separators for counts.
pub fn num(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &#39;y&#39;"
        );
        assert_eq!(href("sessions/a b\".html"), "sessions/a%20b%22.html");
        assert_eq!(num(1234567), "1,234,567");
        assert_eq!(num(12), "12");
    }
}
