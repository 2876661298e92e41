//! The demo newsroom. **Its secret keys are public**: they are derived from
//! fixed strings below so that anyone can run the demo and the tests. It is
//! never trusted unless a user adds `keys/demo/kolokol-demo.toml` by hand.

use crate::proto::SecretKey;

/// Name of the demo newsroom.
pub const DEMO_NAME: &str = "kolokol-demo";

fn derive(role: &str) -> SecretKey {
    let seed = blake3::derive_key(
        "kolokol demo newsroom 2026 PUBLIC KEY MATERIAL, NEVER TRUST",
        role.as_bytes(),
    );
    SecretKey::from_seed(&seed)
}

/// The demo newsroom's root key (public knowledge).
pub fn root_key() -> SecretKey {
    derive("root")
}

/// The demo newsroom's first signing key (public knowledge).
pub fn signing_key() -> SecretKey {
    derive("signing-1")
}
