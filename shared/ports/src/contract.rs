//! The contract every adapter of the submission ports must honour. Run it against a
//! backend with [`contract_tests!`](crate::contract_tests): each case gets fresh ports.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use jiff::civil::date;
use motcua_domain::catalogue::demo_catalogue;
use motcua_domain::dossier::{Applicant, NewDossier};
use motcua_domain::{
    Actor, AgencyCode, Command, Dossier, DossierCode, EventEnvelope, HistoryEntry, Role, Status,
    WorkingCalendar,
};
use uuid::Uuid;

use crate::{IdempotencyBegin, PageRequest, StoreError, StoredResponse, SubmissionPorts};

/// Generates one `#[tokio::test]` per contract case; `$make` is an async expression
/// giving fresh, empty [`SubmissionPorts`].
#[macro_export]
macro_rules! contract_tests {
    ($make:expr) => {
        $crate::contract_tests!(@each $make;
            catalogue_round_trip,
            sequences_are_per_agency_and_day,
            sequences_unique_under_concurrency,
            create_and_read_back,
            duplicate_code_refused,
            transition_appends_history_and_event,
            stale_transition_refused,
            concurrent_transitions_one_wins,
            applicant_listing_pages,
            agency_queue_by_due_date_and_status,
            bad_cursor_refused,
            idempotency_lifecycle,
            outbox_marks_published,
            refile_moves_a_dossier_to_its_owner
        );
    };
    (@each $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let ports = $make.await;
                $crate::contract::$name(ports).await;
            }
        )*
    };
}

fn t(secs: i64) -> Timestamp {
    // 2026-03-17 09:00 +07:00 plus `secs`.
    Timestamp::from_second(1_773_712_800 + secs).expect("valid")
}

pub fn officer(agency: &AgencyCode) -> Actor {
    Actor {
        role: Role::Officer,
        subject: "officer-1".into(),
        agency: Some(agency.clone()),
        assurance: 2,
        owner: None,
    }
}

/// A dossier of the first demo procedure, for `subject`, with sequence number `seq`.
pub fn sample(subject: &str, seq: u32, at: Timestamp) -> (Dossier, HistoryEntry, EventEnvelope) {
    let p = demo_catalogue().remove(2);
    let (d, h) = Dossier::submit(
        &p,
        NewDossier {
            lookup_key: motcua_domain::dossier::LookupKey::from_random(u64::from(seq)),
            id: Uuid::now_v7(),
            code: DossierCode::new(&p.agency, date(2026, 3, 17), seq),
            applicant: Applicant {
                subject: subject.into(),
                phone: Some("+84912345678".into()),
                account: None,
            },
            form: BTreeMap::new(),
            documents: vec![],
            submitted_at: at,
        },
    );
    let e = EventEnvelope::dossier(&d, &h);
    (d, h, e)
}

async fn apply(ports: &SubmissionPorts, d: &Dossier, cmd: Command, at: Timestamp) -> Dossier {
    let (next, h) = d
        .apply(&officer(&d.agency), &cmd, at, WorkingCalendar::vietnam())
        .expect("allowed transition");
    let e = EventEnvelope::dossier(&next, &h);
    ports
        .dossiers
        .transition(&next, &h, &e)
        .await
        .expect("transition stored");
    next
}

pub async fn catalogue_round_trip(ports: SubmissionPorts) {
    let cat = demo_catalogue();
    for p in &cat {
        ports.catalogue.put_procedure(p).await.unwrap();
    }
    // Upsert twice: still one copy each.
    ports.catalogue.put_procedure(&cat[0]).await.unwrap();
    let mut got = ports.catalogue.procedures().await.unwrap();
    got.sort_by(|a, b| a.code.cmp(&b.code));
    let mut want = cat.clone();
    want.sort_by(|a, b| a.code.cmp(&b.code));
    assert_eq!(got, want);
    assert_eq!(
        ports.catalogue.procedure(&cat[3].code).await.unwrap(),
        Some(cat[3].clone())
    );
    assert_eq!(ports.catalogue.procedure("9.999999").await.unwrap(), None);
}

pub async fn sequences_are_per_agency_and_day(ports: SubmissionPorts) {
    let a = AgencyCode::parse("000.00.04.H42").unwrap();
    let b = AgencyCode::parse("000.00.05.H42").unwrap();
    let d1 = date(2026, 3, 17);
    let d2 = date(2026, 3, 18);
    assert_eq!(ports.sequences.next(&a, d1).await.unwrap(), 1);
    assert_eq!(ports.sequences.next(&a, d1).await.unwrap(), 2);
    assert_eq!(ports.sequences.next(&b, d1).await.unwrap(), 1);
    assert_eq!(ports.sequences.next(&a, d2).await.unwrap(), 1);
    assert_eq!(ports.sequences.next(&a, d1).await.unwrap(), 3);
}

pub async fn sequences_unique_under_concurrency(ports: SubmissionPorts) {
    let a = AgencyCode::parse("000.00.04.H42").unwrap();
    let day = date(2026, 3, 17);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let s = ports.sequences.clone();
        let a = a.clone();
        tasks.push(tokio::spawn(async move { s.next(&a, day).await.unwrap() }));
    }
    let mut got = BTreeSet::new();
    for t in tasks {
        assert!(
            got.insert(t.await.unwrap()),
            "a number was handed out twice"
        );
    }
    assert_eq!(got, (1..=50).collect());
}

pub async fn create_and_read_back(ports: SubmissionPorts) {
    let (d, h, e) = sample("alice", 1, t(0));
    ports.dossiers.create(&d, &h, &e).await.unwrap();
    assert_eq!(ports.dossiers.get(d.id).await.unwrap(), Some(d.clone()));
    assert_eq!(
        ports.dossiers.get_by_code(&d.code).await.unwrap(),
        Some(d.clone())
    );
    assert_eq!(ports.dossiers.history(d.id).await.unwrap(), vec![h]);
    assert_eq!(ports.dossiers.get(Uuid::now_v7()).await.unwrap(), None);
    let pending = ports.outbox.pending(10).await.unwrap();
    assert_eq!(pending, vec![e]);
}

pub async fn duplicate_code_refused(ports: SubmissionPorts) {
    let (d, h, e) = sample("alice", 1, t(0));
    ports.dossiers.create(&d, &h, &e).await.unwrap();
    let (mut d2, h2, e2) = sample("bob", 1, t(1));
    d2.code = d.code.clone();
    assert_eq!(
        ports.dossiers.create(&d2, &h2, &e2).await,
        Err(StoreError::Duplicate)
    );
    // Nothing of the refused dossier was stored.
    assert_eq!(ports.dossiers.get(d2.id).await.unwrap(), None);
    assert_eq!(ports.dossiers.history(d2.id).await.unwrap(), vec![]);
    assert_eq!(ports.outbox.pending(10).await.unwrap().len(), 1);
}

pub async fn transition_appends_history_and_event(ports: SubmissionPorts) {
    let (d, h, e) = sample("alice", 1, t(0));
    ports.dossiers.create(&d, &h, &e).await.unwrap();
    let d2 = apply(&ports, &d, Command::Receive, t(60)).await;
    let d3 = apply(&ports, &d2, Command::Process, t(120)).await;
    let stored = ports.dossiers.get(d.id).await.unwrap().unwrap();
    assert_eq!(stored, d3);
    assert_eq!(stored.version, 3);
    let hist = ports.dossiers.history(d.id).await.unwrap();
    let steps: Vec<_> = hist.iter().map(|h| (h.seq, h.to)).collect();
    assert_eq!(
        steps,
        vec![
            (1, Status::Submitted),
            (2, Status::Received),
            (3, Status::Processing)
        ]
    );
    let kinds: Vec<_> = ports
        .outbox
        .pending(10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(
        kinds,
        vec!["dossier.submit", "dossier.receive", "dossier.process"]
    );
}

pub async fn stale_transition_refused(ports: SubmissionPorts) {
    let (d, h, e) = sample("alice", 1, t(0));
    ports.dossiers.create(&d, &h, &e).await.unwrap();
    let _ = apply(&ports, &d, Command::Receive, t(60)).await;
    // A second change computed from the old version must not apply.
    let (stale, h2, _) = {
        let (n, h) = d
            .apply(
                &officer(&d.agency),
                &Command::Refuse {
                    reason: "late".into(),
                },
                t(61),
                WorkingCalendar::vietnam(),
            )
            .unwrap();
        let e = EventEnvelope::dossier(&n, &h);
        (n, h, e)
    };
    let e2 = EventEnvelope::dossier(&stale, &h2);
    assert_eq!(
        ports.dossiers.transition(&stale, &h2, &e2).await,
        Err(StoreError::Conflict)
    );
    let stored = ports.dossiers.get(d.id).await.unwrap().unwrap();
    assert_eq!(stored.status, Status::Received);
    assert_eq!(ports.dossiers.history(d.id).await.unwrap().len(), 2);
    assert_eq!(ports.outbox.pending(10).await.unwrap().len(), 2);
}

pub async fn concurrent_transitions_one_wins(ports: SubmissionPorts) {
    let (d, h, e) = sample("alice", 1, t(0));
    ports.dossiers.create(&d, &h, &e).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let ports = ports.clone();
        let d = d.clone();
        tasks.push(tokio::spawn(async move {
            let cmd = if i % 2 == 0 {
                Command::Receive
            } else {
                Command::Refuse {
                    reason: format!("r{i}"),
                }
            };
            let (n, h) = d
                .apply(&officer(&d.agency), &cmd, t(60), WorkingCalendar::vietnam())
                .unwrap();
            let e = EventEnvelope::dossier(&n, &h);
            ports.dossiers.transition(&n, &h, &e).await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => wins += 1,
            Err(StoreError::Conflict) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(wins, 1);
    assert_eq!(ports.dossiers.history(d.id).await.unwrap().len(), 2);
    assert_eq!(ports.outbox.pending(100).await.unwrap().len(), 2);
}

pub async fn applicant_listing_pages(ports: SubmissionPorts) {
    let mut ids = Vec::new();
    for i in 0..7u32 {
        let (d, h, e) = sample("alice", i + 1, t(i64::from(i) * 10));
        ports.dossiers.create(&d, &h, &e).await.unwrap();
        ids.push(d.id);
    }
    let (d, h, e) = sample("bob", 100, t(5));
    ports.dossiers.create(&d, &h, &e).await.unwrap();
    ids.reverse(); // newest first
    let mut seen = Vec::new();
    let mut req = PageRequest::first(3);
    loop {
        let page = ports
            .dossiers
            .list_by_applicant("alice", &req)
            .await
            .unwrap();
        assert!(page.items.len() <= 3);
        seen.extend(page.items.iter().map(|d| d.id));
        match page.next_cursor {
            Some(c) => req.cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let empty = ports
        .dossiers
        .list_by_applicant("nobody", &PageRequest::first(10))
        .await
        .unwrap();
    assert!(empty.items.is_empty() && empty.next_cursor.is_none());
}

pub async fn agency_queue_by_due_date_and_status(ports: SubmissionPorts) {
    // Three dossiers received on different days get different due dates.
    let mut made = Vec::new();
    for (i, day_offset) in [(1u32, 2 * 86_400i64), (2, 0), (3, 86_400)] {
        let (d, h, e) = sample("alice", i, t(i64::from(i)));
        ports.dossiers.create(&d, &h, &e).await.unwrap();
        let d = apply(&ports, &d, Command::Receive, t(day_offset + 100)).await;
        made.push(d);
    }
    let (waiting, h, e) = sample("bob", 9, t(50));
    ports.dossiers.create(&waiting, &h, &e).await.unwrap();
    let agency = made[0].agency.clone();
    let mut by_due = made.clone();
    by_due.sort_by_key(|d| d.due_date);
    let q = ports
        .dossiers
        .agency_queue(&agency, Some(Status::Received), &PageRequest::first(2))
        .await
        .unwrap();
    assert_eq!(
        q.items.iter().map(|d| d.id).collect::<Vec<_>>(),
        by_due[..2].iter().map(|d| d.id).collect::<Vec<_>>()
    );
    let rest = ports
        .dossiers
        .agency_queue(
            &agency,
            Some(Status::Received),
            &PageRequest {
                limit: 2,
                cursor: q.next_cursor.clone(),
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.items[0].id, by_due[2].id);
    let new = ports
        .dossiers
        .agency_queue(&agency, Some(Status::Submitted), &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(new.items.len(), 1);
    assert_eq!(new.items[0].id, waiting.id);
    let all = ports
        .dossiers
        .agency_queue(&agency, None, &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(all.items.len(), 4);
    let other = AgencyCode::parse("000.00.99.H42").unwrap();
    assert!(
        ports
            .dossiers
            .agency_queue(&other, None, &PageRequest::first(10))
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

pub async fn bad_cursor_refused(ports: SubmissionPorts) {
    let req = PageRequest {
        limit: 10,
        cursor: Some("not-a-cursor!".into()),
    };
    assert_eq!(
        ports.dossiers.list_by_applicant("alice", &req).await,
        Err(StoreError::BadCursor)
    );
    let agency = AgencyCode::parse("000.00.04.H42").unwrap();
    assert_eq!(
        ports.dossiers.agency_queue(&agency, None, &req).await,
        Err(StoreError::BadCursor)
    );
}

pub async fn idempotency_lifecycle(ports: SubmissionPorts) {
    let idem = &ports.idempotency;
    let now = t(0);
    assert_eq!(
        idem.begin("u1:k1", "fp-a", now, 3600).await.unwrap(),
        IdempotencyBegin::Started
    );
    assert_eq!(
        idem.begin("u1:k1", "fp-a", now, 3600).await.unwrap(),
        IdempotencyBegin::InProgress
    );
    assert_eq!(
        idem.begin("u1:k1", "fp-b", now, 3600).await.unwrap(),
        IdempotencyBegin::Mismatch
    );
    let resp = StoredResponse {
        status: 201,
        content_type: "application/json".into(),
        body: b"{\"ok\":true}".to_vec(),
        // A replay is the first answer, headers included.
        headers: vec![
            ("location".into(), "/v1/dossiers/1".into()),
            ("etag".into(), "\"1\"".into()),
        ],
    };
    idem.complete("u1:k1", &resp).await.unwrap();
    assert_eq!(
        idem.begin("u1:k1", "fp-a", now, 3600).await.unwrap(),
        IdempotencyBegin::Replay(resp)
    );
    // Released keys can be used again.
    assert_eq!(
        idem.begin("u1:k2", "fp-a", now, 3600).await.unwrap(),
        IdempotencyBegin::Started
    );
    idem.release("u1:k2").await.unwrap();
    assert_eq!(
        idem.begin("u1:k2", "fp-c", now, 3600).await.unwrap(),
        IdempotencyBegin::Started
    );
    // Expired records are forgotten.
    let later = Timestamp::from_second(now.as_second() + 7200).unwrap();
    assert_eq!(
        idem.begin("u1:k1", "fp-z", later, 3600).await.unwrap(),
        IdempotencyBegin::Started
    );
}

pub async fn outbox_marks_published(ports: SubmissionPorts) {
    let mut events = Vec::new();
    for i in 0..3 {
        let (d, h, e) = sample("alice", i + 1, t(i64::from(i)));
        ports.dossiers.create(&d, &h, &e).await.unwrap();
        events.push(e);
    }
    assert_eq!(ports.outbox.pending(2).await.unwrap(), events[..2].to_vec());
    ports
        .outbox
        .mark_published(&[events[0].id, Uuid::now_v7()])
        .await
        .unwrap();
    ports.outbox.mark_published(&[events[0].id]).await.unwrap();
    assert_eq!(
        ports.outbox.pending(10).await.unwrap(),
        events[1..].to_vec()
    );
    // Paging on from an event, published or not.
    assert_eq!(
        ports.outbox.pending_after(10, &events[0]).await.unwrap(),
        events[1..].to_vec()
    );
    assert_eq!(
        ports.outbox.pending_after(1, &events[1]).await.unwrap(),
        events[2..].to_vec()
    );
    assert!(
        ports
            .outbox
            .pending_after(10, &events[2])
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn refile_moves_a_dossier_to_its_owner(ports: SubmissionPorts) {
    let (d, h, e) = sample("0190c0de-0000-7000-8000-00000000a001", 1, t(0));
    ports.dossiers.create(&d, &h, &e).await.unwrap();
    let mut moved = d.clone();
    moved.applicant.subject = "citizen:00112233445566778899aabbccddeeff".into();
    ports.dossiers.refile(&moved).await.unwrap();
    let mine = ports
        .dossiers
        .list_by_applicant(&moved.applicant.subject, &PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(mine.items, vec![moved.clone()]);
    let old = ports
        .dossiers
        .list_by_applicant(&d.applicant.subject, &PageRequest::first(10))
        .await
        .unwrap();
    assert!(old.items.is_empty(), "no longer under the account id");
    assert_eq!(ports.dossiers.get(d.id).await.unwrap(), Some(moved.clone()));
    // Only from the version read: a dossier that moved on meanwhile is not overwritten.
    let mut stale = moved.clone();
    stale.version = d.version + 1;
    assert_eq!(
        ports.dossiers.refile(&stale).await,
        Err(StoreError::Conflict)
    );
}
