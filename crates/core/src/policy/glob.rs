//! Shell-style name patterns for tables and columns (`*.card_number`, `acct_*`).

/// A compiled `*`/`?` pattern, matched case-insensitively.
///
/// Table and column names in policy are short, so a tiny backtracking
/// matcher is faster and easier to audit than compiling each to a regex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob(String);

impl Glob {
    /// Compile a pattern; names are compared lower-case.
    pub fn new(pattern: &str) -> Glob {
        Glob(pattern.to_ascii_lowercase())
    }

    /// The pattern as written (lower-cased).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `name` matches; `name` is lower-cased before comparing.
    pub fn matches(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        matches_bytes(self.0.as_bytes(), name.as_bytes())
    }

    /// Whether a table name matches, either as written (`public.customers`)
    /// or by its last segment (`customers`), so `customers` in policy covers
    /// both `customers` and `public.customers` in SQL.
    pub fn matches_table(&self, table: &str) -> bool {
        if self.matches(table) {
            return true;
        }
        match table.rsplit_once('.') {
            Some((_, last)) => !self.0.contains('.') && self.matches(last),
            None => false,
        }
    }
}

fn matches_bytes(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let (mut star_p, mut star_n) = (None, 0);
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star_p = Some(p);
            star_n = n;
            p += 1;
        } else if let Some(sp) = star_p {
            p = sp + 1;
            star_n += 1;
            n = star_n;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn literal_star_and_question() {
        assert!(Glob::new("customers").matches("CUSTOMERS"));
        assert!(Glob::new("acct_*").matches("acct_number"));
        assert!(!Glob::new("acct_*").matches("account"));
        assert!(Glob::new("*").matches(""));
        assert!(Glob::new("c?t").matches("cat"));
        assert!(Glob::new("*.card_*").matches("public.card_no"));
    }

    #[test]
    fn table_matches_last_segment() {
        assert!(Glob::new("customers").matches_table("public.customers"));
        assert!(Glob::new("public.*").matches_table("public.customers"));
        assert!(!Glob::new("other.customers").matches_table("public.customers"));
    }
}
