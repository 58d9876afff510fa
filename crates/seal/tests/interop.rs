//! Interoperability with the reference age tool (`age`, `age-keygen`), when
//! installed (Debian: apt-get install age): what we seal it opens, what it
//! seals we open, and its keys are ours.

use gatehouse_seal::{open, seal, Identity, Recipient};
use std::io::Write;
use std::process::{Command, Stdio};

fn have_age() -> bool {
    let ok = Command::new("age").arg("--version").output().is_ok();
    if !ok {
        assert!(
            std::env::var("GATEHOUSE_REQUIRE_AGE").as_deref() != Ok("1"),
            "age is required but not installed"
        );
        eprintln!("SKIPPED: the age tool is not installed");
    }
    ok
}

#[test]
fn the_reference_age_tool_and_we_read_each_other() {
    if !have_age() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("id.txt");
    let o = Command::new("age-keygen")
        .arg("-o")
        .arg(&key_file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let identity = Identity::parse(&std::fs::read_to_string(&key_file).unwrap()).unwrap();
    let recipient = identity.recipient().to_string();
    let o = Command::new("age-keygen")
        .arg("-y")
        .arg(&key_file)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        recipient,
        "same public key"
    );

    // Ours → age.
    let plain = br#"{"cells":[{"row":0,"column":1,"value":"123-45-6789"}]}"#;
    let sealed = seal(&Recipient::parse(&recipient).unwrap(), plain);
    let mut child = Command::new("age")
        .args(["-d", "-i"])
        .arg(&key_file)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = sealed.clone().into_bytes();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        o.status.success(),
        "age -d: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.stdout, plain);

    // age → ours (armored, several chunks).
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let mut child = Command::new("age")
        .args(["-a", "-r", &recipient])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = big.clone();
    // Written from another thread: age streams its output while reading,
    // so writing everything first would fill the pipes and deadlock.
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let o = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(o.status.success());
    let text = String::from_utf8(o.stdout).unwrap();
    assert_eq!(open(&identity, &text).unwrap(), big);
}
