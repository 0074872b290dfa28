//! Properties of signing-key rotation over any schedule of rotations.

use motcua_domain::Role;
use motcua_http::{Authenticator, SigningKey, rotate_signing_keys};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever the gaps between rotations (hours to months) and the publish delay: some
    /// key always signs, a new key never signs before its publish delay (unless it is the
    /// very first), the set stays small, and a token signed just before a rotation still
    /// verifies after it.
    #[test]
    fn rotation_keeps_signing_and_verifying(
        gaps in prop::collection::vec(3_600i64..100 * 86_400, 1..8),
        publish in 0i64..3 * 86_400,
    ) {
        let mut now = jiff::Timestamp::now().as_second();
        let mut keys = rotate_signing_keys(&[], SigningKey::generate("k0"), now, publish);
        prop_assert_eq!(keys[0].active_from, now);
        for (i, gap) in gaps.iter().enumerate() {
            let before = Authenticator::new("motcua", "motcua", &[]).unwrap().with_signing_keys(&keys);
            let old_token = before.mint_signed("acct", Role::Citizen, None, now, 900);
            prop_assert!(old_token.is_some(), "a key signs before rotation {}", i);
            keys = rotate_signing_keys(&keys, SigningKey::generate(&format!("k{}", i + 1)), now, publish);
            prop_assert!(keys.len() <= 3 + 1, "at most the new, the pending and two active keys");
            prop_assert_eq!(keys[0].active_from, now + publish);
            let after = Authenticator::new("motcua", "motcua", &[]).unwrap().with_signing_keys(&keys);
            prop_assert!(after.verify(&old_token.unwrap()).is_ok(), "tokens of the previous key still verify");
            prop_assert!(after.can_sign(now), "some key signs right after the rotation");
            now += gap;
            prop_assert!(after.can_sign(now));
        }
    }
}
