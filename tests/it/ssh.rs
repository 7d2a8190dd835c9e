//! The real sshd the servers tests use: reachable with strict host key checking, and refused
//! when the host key differs.

use std::process::Command;

use holt_tests::Sshd;

fn ssh(sshd: &Sshd, known_hosts: &std::path::Path, command: &str) -> std::process::Output {
    Command::new("ssh")
        .args(["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes"])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known_hosts.display()))
        .args(["-o", "IdentitiesOnly=yes", "-i"])
        .arg(sshd.client_key())
        .args([
            "-p",
            &sshd.addr.port().to_string(),
            "-l",
            &sshd.user,
            "127.0.0.1",
        ])
        .arg(command)
        .output()
        .expect("run ssh")
}

#[test]
fn the_test_sshd_checks_host_keys() {
    let sshd = Sshd::start();
    let ok = ssh(&sshd, &sshd.known_hosts(), "echo reached");
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout),
        "reached\n",
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let refused = ssh(&sshd, &sshd.wrong_known_hosts(), "echo reached");
    assert!(!refused.status.success());
    assert!(refused.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("HOST IDENTIFICATION HAS CHANGED"),
        "{stderr}"
    );
}
