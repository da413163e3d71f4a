//! TLS uses rustls with the ring provider (no C toolchain beyond ring's, no
//! OpenSSL).

pub fn install_provider() {
    // Fails harmlessly when already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
