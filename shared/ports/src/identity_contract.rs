//! The contract of the identity ports; run with [`identity_contract_tests!`](crate::identity_contract_tests).

use jiff::Timestamp;
use jiff::civil::date;
use motcua_domain::ids::Sex;
use uuid::Uuid;

use crate::StoreError;
use crate::identity::{
    Account, AccountKind, AuditEntry, BusinessGrant, Challenge, ChannelPreferences, IdentityPorts,
    RefreshRecord, RefreshUse,
};

/// One `#[tokio::test]` per case; `$make` is an async expression giving fresh ports.
#[macro_export]
macro_rules! identity_contract_tests {
    ($make:expr) => {
        $crate::identity_contract_tests!(@each $make;
            one_account_per_id_hash,
            one_account_under_concurrency,
            account_updates_are_versioned,
            audit_is_listed_newest_first_per_hash,
            attempts_are_counted_in_a_window,
            refresh_tokens_are_spent_once_and_families_revoked,
            erased_accounts_are_gone,
            a_late_erase_leaves_the_replacement_alone,
            revoked_subjects_stay_revoked_until_their_tokens_expire,
            replacing_a_lower_level_account_under_concurrency_leaves_no_orphan,
            reserved_attempts_count_until_released,
            challenges_are_single_use_and_expire,
            business_grants_are_one_per_member_and_revocable
        );
    };
    (@each $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let ports = $make.await;
                $crate::identity_contract::$name(ports).await;
            }
        )*
    };
}

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_773_712_800 + secs).expect("valid")
}

pub fn account(hash: &str) -> Account {
    Account {
        id: Uuid::now_v7(),
        kind: AccountKind::Citizen,
        id_hash: hash.into(),
        id_hash_kid: Some("k1".into()),
        owner: None,
        assurance: 2,
        name: "Nguyễn Thị Lan".into(),
        birth_date: Some(date(1953, 4, 2)),
        sex: Some(Sex::Female),
        phone: Some("+84912345678".into()),
        email: None,
        preferences: ChannelPreferences::default(),
        created_at: t(0),
        updated_at: t(0),
        version: 1,
        sealed: None,
    }
}

pub async fn one_account_per_id_hash(p: IdentityPorts) {
    let a = account("h1");
    let (stored, created) = p.accounts.create_if_absent(&a).await.unwrap();
    assert!(created);
    assert_eq!(stored, a);
    let again = account("h1");
    let (stored2, created2) = p.accounts.create_if_absent(&again).await.unwrap();
    assert!(!created2);
    assert_eq!(stored2.id, a.id);
    assert_eq!(p.accounts.get(a.id).await.unwrap(), Some(a.clone()));
    assert_eq!(
        p.accounts
            .get_by_id_hash(AccountKind::Citizen, "h1")
            .await
            .unwrap()
            .map(|x| x.id),
        Some(a.id)
    );
    // The same hash as a business is another account.
    assert_eq!(
        p.accounts
            .get_by_id_hash(AccountKind::Business, "h1")
            .await
            .unwrap(),
        None
    );
    assert_eq!(p.accounts.get(again.id).await.unwrap(), None);
}

pub async fn one_account_under_concurrency(p: IdentityPorts) {
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let accounts = p.accounts.clone();
        tasks.push(tokio::spawn(async move {
            accounts.create_if_absent(&account("same")).await.unwrap()
        }));
    }
    let mut created = 0;
    let mut ids = std::collections::BTreeSet::new();
    for task in tasks {
        let (a, c) = task.await.unwrap();
        created += usize::from(c);
        ids.insert(a.id);
    }
    assert_eq!(created, 1);
    assert_eq!(ids.len(), 1, "every caller sees the one account");
}

pub async fn account_updates_are_versioned(p: IdentityPorts) {
    let a = account("h2");
    p.accounts.create_if_absent(&a).await.unwrap();
    let mut b = a.clone();
    b.email = Some("lan@example.vn".into());
    b.version = 2;
    p.accounts.update(&b).await.unwrap();
    let mut stale = a.clone();
    stale.phone = None;
    stale.version = 2;
    assert_eq!(p.accounts.update(&stale).await, Err(StoreError::Conflict));
    assert_eq!(p.accounts.get(a.id).await.unwrap(), Some(b));
}

pub async fn audit_is_listed_newest_first_per_hash(p: IdentityPorts) {
    let entry = |hash: &str, at: i64, outcome: &str| AuditEntry {
        id: Uuid::now_v7(),
        at: t(at),
        actor: "client-1".into(),
        purpose: "citizen-verification".into(),
        id_hash: hash.into(),
        kid: Some("k1".into()),
        outcome: outcome.into(),
    };
    let e1 = entry("h", 1, "mismatch");
    let e2 = entry("h", 2, "match");
    let other = entry("x", 3, "match");
    for e in [&e1, &e2, &other] {
        p.audit.append(e).await.unwrap();
    }
    assert_eq!(
        p.audit.by_id_hash("h", 10).await.unwrap(),
        vec![e2.clone(), e1]
    );
    assert_eq!(p.audit.by_id_hash("h", 1).await.unwrap(), vec![e2]);
    assert!(p.audit.by_id_hash("none", 10).await.unwrap().is_empty());
}

pub async fn attempts_are_counted_in_a_window(p: IdentityPorts) {
    for s in [0, 10, 20] {
        p.attempts.record_failure("k", t(s)).await.unwrap();
    }
    p.attempts.record_failure("other", t(15)).await.unwrap();
    // The newest `max` only, oldest first.
    assert_eq!(
        p.attempts.failures_since("k", t(0), 2).await.unwrap(),
        vec![t(10), t(20)]
    );
    assert_eq!(
        p.attempts.failures_since("k", t(5), 100).await.unwrap(),
        vec![t(10), t(20)]
    );
    p.attempts.clear("k").await.unwrap();
    assert!(
        p.attempts
            .failures_since("k", t(0), 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        p.attempts
            .failures_since("other", t(0), 100)
            .await
            .unwrap()
            .len(),
        1
    );
}

pub async fn refresh_tokens_are_spent_once_and_families_revoked(p: IdentityPorts) {
    let family = Uuid::now_v7();
    let r = RefreshRecord {
        token_hash: format!("hash-{family}"),
        account_id: Uuid::now_v7(),
        family,
        expires: t(3600),
        grant: None,
        representative: false,
    };
    p.refresh.put(&r).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = p.refresh.clone();
        let h = r.token_hash.clone();
        tasks.push(tokio::spawn(
            async move { store.spend(&h, t(5)).await.unwrap() },
        ));
    }
    let mut fresh = 0;
    for task in tasks {
        match task.await.unwrap() {
            RefreshUse::Fresh(got) => {
                fresh += 1;
                assert_eq!(got, r);
            }
            RefreshUse::Reused { record, spent_at } => {
                assert_eq!(record.family, family);
                assert_eq!(spent_at, t(5), "when it was spent");
            }
            RefreshUse::NotFound => panic!("the token exists"),
        }
    }
    assert_eq!(fresh, 1, "a token is spent exactly once");
    assert_eq!(p.refresh.spent(&r.token_hash).await.unwrap(), Some(true));
    assert_eq!(p.refresh.spent("no-such-hash").await.unwrap(), None);
    // One retry per spent token, however many ask at once.
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = p.refresh.clone();
        let h = r.token_hash.clone();
        tasks.push(tokio::spawn(
            async move { store.claim_retry(&h).await.unwrap() },
        ));
    }
    let mut claimed = 0;
    for task in tasks {
        claimed += usize::from(task.await.unwrap());
    }
    assert_eq!(claimed, 1);
    let unspent = RefreshRecord {
        token_hash: format!("unspent-{family}"),
        ..r.clone()
    };
    p.refresh.put(&unspent).await.unwrap();
    assert_eq!(
        p.refresh.spent(&unspent.token_hash).await.unwrap(),
        Some(false)
    );
    assert!(!p.refresh.claim_retry(&unspent.token_hash).await.unwrap());
    assert_eq!(
        p.refresh.spend("no-such-hash", t(5)).await.unwrap(),
        RefreshUse::NotFound
    );
    assert!(!p.refresh.family_revoked(family).await.unwrap());
    p.refresh.revoke_family(family).await.unwrap();
    p.refresh.revoke_family(family).await.unwrap();
    assert!(p.refresh.family_revoked(family).await.unwrap());
    assert!(!p.refresh.family_revoked(Uuid::now_v7()).await.unwrap());
}

pub async fn erased_accounts_are_gone(p: IdentityPorts) {
    let a = account("h-erase");
    p.accounts.create_if_absent(&a).await.unwrap();
    p.accounts.erase(&a).await.unwrap();
    p.accounts.erase(&a).await.unwrap();
    assert_eq!(p.accounts.get(a.id).await.unwrap(), None);
    assert_eq!(
        p.accounts
            .get_by_id_hash(AccountKind::Citizen, "h-erase")
            .await
            .unwrap(),
        None
    );
    // The person may verify again: a new account.
    let b = account("h-erase");
    let (stored, created) = p.accounts.create_if_absent(&b).await.unwrap();
    assert!(created);
    assert_eq!(stored.id, b.id);
}

/// Two sign-ins replace the same level-1 account; the slower one erases it after the
/// faster one already created the level-2 replacement: the number must still lead to
/// the replacement.
pub async fn a_late_erase_leaves_the_replacement_alone(p: IdentityPorts) {
    let mut low = account("h-late");
    low.assurance = 1;
    p.accounts.create_if_absent(&low).await.unwrap();
    p.accounts.erase(&low).await.unwrap();
    let high = account("h-late");
    assert!(p.accounts.create_if_absent(&high).await.unwrap().1);
    p.accounts.erase(&low).await.unwrap();
    assert_eq!(
        p.accounts
            .get_by_id_hash(AccountKind::Citizen, "h-late")
            .await
            .unwrap()
            .map(|a| a.id),
        Some(high.id)
    );
    assert_eq!(
        p.accounts.get(high.id).await.unwrap().map(|a| a.id),
        Some(high.id)
    );
}

/// Sixteen simultaneous sign-ins at level 2 of a person holding a level-1 account (the
/// replacement as the identity function does it: erase the lower account, create): one
/// account stays, found by the number, and no other replacement is left behind.
pub async fn replacing_a_lower_level_account_under_concurrency_leaves_no_orphan(p: IdentityPorts) {
    let mut low = account("h-race");
    low.assurance = 1;
    p.accounts.create_if_absent(&low).await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let accounts = p.accounts.clone();
        tasks.push(tokio::spawn(async move {
            let mine = account("h-race");
            let (stored, _) = accounts.create_if_absent(&mine).await.unwrap();
            if stored.assurance < mine.assurance {
                accounts.erase(&stored).await.unwrap();
                accounts.create_if_absent(&mine).await.unwrap();
            }
            mine.id
        }));
    }
    let mut tried = Vec::new();
    for task in tasks {
        tried.push(task.await.unwrap());
    }
    let kept = p
        .accounts
        .get_by_id_hash(AccountKind::Citizen, "h-race")
        .await
        .unwrap()
        .expect("the number leads to an account");
    assert_eq!(kept.assurance, 2);
    assert_eq!(p.accounts.get(low.id).await.unwrap(), None);
    for id in tried {
        let found = p.accounts.get(id).await.unwrap();
        assert!(
            id == kept.id || found.is_none(),
            "orphan account {id}: not reachable by its number"
        );
    }
}

pub async fn revoked_subjects_stay_revoked_until_their_tokens_expire(p: IdentityPorts) {
    assert!(!p.revoked.subject_revoked("acct-1", t(0)).await.unwrap());
    p.revoked.revoke_subject("acct-1", t(900)).await.unwrap();
    // Again, with an earlier end: the later one holds.
    p.revoked.revoke_subject("acct-1", t(600)).await.unwrap();
    assert!(p.revoked.subject_revoked("acct-1", t(0)).await.unwrap());
    assert!(p.revoked.subject_revoked("acct-1", t(899)).await.unwrap());
    assert!(!p.revoked.subject_revoked("acct-1", t(900)).await.unwrap());
    assert!(!p.revoked.subject_revoked("acct-2", t(0)).await.unwrap());
}

pub async fn reserved_attempts_count_until_released(p: IdentityPorts) {
    let a = p.attempts.reserve("r", t(1)).await.unwrap();
    let b = p.attempts.reserve("r", t(1)).await.unwrap();
    assert_ne!(a, b, "two attempts at the same instant are two");
    assert_eq!(
        p.attempts
            .failures_since("r", t(0), 100)
            .await
            .unwrap()
            .len(),
        2
    );
    p.attempts.release("r", &a).await.unwrap();
    // Releasing under another key, or twice, or an unknown handle changes nothing.
    p.attempts.release("other", &b).await.unwrap();
    p.attempts.release("r", &a).await.unwrap();
    p.attempts.release("r", "no-such-handle").await.unwrap();
    assert_eq!(
        p.attempts.failures_since("r", t(0), 100).await.unwrap(),
        vec![t(1)]
    );
    // 20 concurrent reservations: all counted, none lost.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let att = p.attempts.clone();
        tasks.push(tokio::spawn(
            async move { att.reserve("burst", t(2)).await },
        ));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(
        p.attempts
            .failures_since("burst", t(0), 100)
            .await
            .unwrap()
            .len(),
        20
    );
}

pub async fn challenges_are_single_use_and_expire(p: IdentityPorts) {
    let c = Challenge {
        id: format!("ch-{}", Uuid::now_v7()),
        purpose: "sms-code".into(),
        secret_hash: "hash".into(),
        payload: serde_json::json!({"id_hash": "h"}),
        expires: t(300),
    };
    p.challenges.put(&c).await.unwrap();
    assert_eq!(
        p.challenges.put(&c).await.unwrap_err(),
        StoreError::Duplicate
    );
    assert_eq!(
        p.challenges.get(&c.id, t(0)).await.unwrap(),
        Some(c.clone())
    );
    assert_eq!(p.challenges.get(&c.id, t(300)).await.unwrap(), None);
    assert_eq!(p.challenges.get("unknown", t(0)).await.unwrap(), None);
    // Expired: cannot be consumed.
    assert!(!p.challenges.consume(&c.id, t(301)).await.unwrap());
    // Of ten simultaneous uses one wins.
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (ch, id) = (p.challenges.clone(), c.id.clone());
        tasks.push(tokio::spawn(async move { ch.consume(&id, t(10)).await }));
    }
    let mut won = 0;
    for task in tasks {
        won += usize::from(task.await.unwrap().unwrap());
    }
    assert_eq!(won, 1);
    assert_eq!(p.challenges.get(&c.id, t(10)).await.unwrap(), None);
}

pub async fn business_grants_are_one_per_member_and_revocable(p: IdentityPorts) {
    let (business, other_business) = (Uuid::now_v7(), Uuid::now_v7());
    let grant = |member: &str, at: i64| BusinessGrant {
        id: Uuid::now_v7(),
        business_id: business,
        member_hash: member.into(),
        member_kid: Some("k1".into()),
        granted_by: Uuid::now_v7(),
        granted_at: t(at),
    };
    let a = grant("member-a", 1);
    let (stored, new) = p.grants.grant(&a).await.unwrap();
    assert!(new);
    assert_eq!(stored, a);
    // Granting the same member again keeps the first grant.
    let (again, new) = p.grants.grant(&grant("member-a", 2)).await.unwrap();
    assert!(!new);
    assert_eq!(again, a);
    let b = grant("member-b", 3);
    p.grants.grant(&b).await.unwrap();
    assert_eq!(
        p.grants.list(business).await.unwrap(),
        vec![a.clone(), b.clone()]
    );
    assert!(p.grants.list(other_business).await.unwrap().is_empty());
    assert_eq!(
        p.grants.find(business, "member-a").await.unwrap(),
        Some(a.clone())
    );
    assert_eq!(
        p.grants.find(other_business, "member-a").await.unwrap(),
        None
    );
    // Revoking: only the business's own grant, once.
    assert!(!p.grants.revoke(other_business, a.id).await.unwrap());
    assert!(p.grants.revoke(business, a.id).await.unwrap());
    assert!(!p.grants.revoke(business, a.id).await.unwrap());
    assert_eq!(p.grants.find(business, "member-a").await.unwrap(), None);
    assert_eq!(p.grants.list(business).await.unwrap(), vec![b]);
}
