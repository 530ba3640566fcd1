//! Certificates made in the test, with Debian's `openssl` command (a dependency of Debian's
//! `postgresql` package, through `ssl-cert`, so wherever the PostgreSQL tests run it is there; no
//! certificate crate to build). A CA, and server certificates it signs, valid for a day.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A certificate authority: its certificate and key in `dir`.
pub struct TestCa {
    pub cert: PathBuf,
    key: PathBuf,
    dir: PathBuf,
}

/// Runs `openssl` with `args` in `dir`, panicking with its output when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let output =
        Command::new("openssl").args(args).current_dir(dir).output().unwrap_or_else(|e| {
            panic!("openssl (Debian's `openssl` package) is needed to make test certificates: {e}")
        });
    assert!(
        output.status.success(),
        "openssl {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

impl TestCa {
    /// A new CA named `name`, its files `name.crt` and `name.key` in `dir`. P-256 keys: quick to make.
    pub fn new(dir: &Path, name: &str) -> TestCa {
        let (cert, key) = (format!("{name}.crt"), format!("{name}.key"));
        let subject = format!("/CN={name}");
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "1",
                "-subj",
                &subject,
                "-keyout",
                &key,
                "-out",
                &cert,
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        TestCa { cert: dir.join(cert), key: dir.join(key), dir: dir.to_owned() }
    }

    /// A server certificate for the DNS name `host`, signed by this CA: `(cert, key)`.
    pub fn server(&self, host: &str) -> (PathBuf, PathBuf) {
        let (cert, key, csr, ext) = ("server.crt", "server.key", "server.csr", "server.ext");
        let subject = format!("/CN={host}");
        openssl(
            &self.dir,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                &subject,
                "-keyout",
                key,
                "-out",
                csr,
            ],
        );
        // Clients check the name in subjectAltName (the common name is ignored by rustls).
        let extensions = format!(
            "subjectAltName=DNS:{host}\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        );
        std::fs::write(self.dir.join(ext), extensions).expect("extensions file");
        let (ca_cert, ca_key) = (self.cert.to_str().expect("utf-8"), self.key.to_str().expect("utf-8"));
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                csr,
                "-CA",
                ca_cert,
                "-CAkey",
                ca_key,
                "-set_serial",
                "2",
                "-days",
                "1",
                "-extfile",
                ext,
                "-out",
                cert,
            ],
        );
        (self.dir.join(cert), self.dir.join(key))
    }
}
