//! Tokens whose signature was already checked, so the next request of the same session
//! skips the check.
//!
//! A portal sends the same account token with every call of a session, and checking an
//! ES256 signature (~56 µs) was most of what an authenticated read cost the runner. An
//! entry is found by the SHA-256 of the whole token (a token that differs in any byte is
//! checked in full), holds only what the check concluded, and counts only while:
//! - the token has not expired (with the same leeway as the full check),
//! - the keys it was checked against have not changed since (a rotation or a re-read
//!   JWKS that drops a key ends every entry at once: both bump a generation number).
//!
//! Revocation is not cached: the caller asks the revocation list on every request.

use std::collections::HashMap;
use std::sync::Mutex;

use motcua_domain::Actor;
use sha2::{Digest, Sha256};

/// How many sessions are remembered; past that, expired entries go, then everything.
const CAPACITY: usize = 10_000;

struct Seen {
    actor: Actor,
    /// The token's `exp` plus the leeway: the last second it is accepted.
    until: i64,
    /// The key generations (local, remote) it was checked under.
    keys: (u64, u64),
}

#[derive(Default)]
pub(crate) struct Verified {
    seen: Mutex<HashMap<[u8; 32], Seen>>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Verified {
    /// The caller of `token` if it was checked under `keys` and is still valid at `now`.
    pub(crate) fn get(&self, token: &str, now: i64, keys: (u64, u64)) -> Option<Actor> {
        let d = digest(token);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        match seen.get(&d) {
            Some(s) if s.keys == keys && now <= s.until => Some(s.actor.clone()),
            Some(_) => {
                // Expired or checked under keys that are gone: the full check decides
                // (and says why it refuses).
                seen.remove(&d);
                None
            }
            None => None,
        }
    }

    /// Remembers that `token` was checked under `keys` and names `actor` until `until`.
    pub(crate) fn put(&self, token: &str, actor: &Actor, until: i64, now: i64, keys: (u64, u64)) {
        let d = digest(token);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() >= CAPACITY && !seen.contains_key(&d) {
            seen.retain(|_, s| now <= s.until);
            if seen.len() >= CAPACITY {
                seen.clear();
            }
        }
        seen.insert(
            d,
            Seen {
                actor: actor.clone(),
                until,
                keys,
            },
        );
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use motcua_domain::Role;

    fn actor(sub: &str) -> Actor {
        Actor {
            role: Role::Citizen,
            subject: sub.into(),
            owner: None,
            agency: None,
            assurance: 2,
        }
    }

    #[test]
    fn an_entry_counts_for_its_token_its_keys_and_its_lifetime_only() {
        let v = Verified::default();
        v.put("a.b.c", &actor("alice"), 1_000, 0, (1, 0));
        assert_eq!(v.get("a.b.c", 1_000, (1, 0)).unwrap().subject, "alice");
        assert!(v.get("a.b.d", 10, (1, 0)).is_none(), "another token");
        assert!(v.get("a.b.c", 1_001, (1, 0)).is_none(), "expired");
        assert_eq!(v.len(), 0, "an expired entry is dropped");
        v.put("a.b.c", &actor("alice"), 1_000, 0, (1, 0));
        assert!(v.get("a.b.c", 10, (2, 0)).is_none(), "local keys changed");
        v.put("a.b.c", &actor("alice"), 1_000, 0, (1, 0));
        assert!(v.get("a.b.c", 10, (1, 1)).is_none(), "remote keys changed");
    }

    #[test]
    fn the_cache_is_bounded() {
        let v = Verified::default();
        for i in 0..CAPACITY {
            v.put(
                &format!("t{i}"),
                &actor("a"),
                if i % 2 == 0 { 5 } else { 100 },
                0,
                (0, 0),
            );
        }
        assert_eq!(v.len(), CAPACITY);
        // Full: the expired half goes first.
        v.put("new", &actor("b"), 100, 50, (0, 0));
        assert_eq!(v.len(), CAPACITY / 2 + 1);
        for i in 0..CAPACITY {
            v.put(&format!("u{i}"), &actor("a"), 100, 50, (0, 0));
        }
        assert!(v.len() <= CAPACITY);
    }
}
