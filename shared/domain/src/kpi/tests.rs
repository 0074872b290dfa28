use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::civil::date;
use uuid::Uuid;

use super::score::{Indicator, Rule, Scoring, indicators};
use super::*;
use crate::Procedure;
use crate::calendar::{WorkingCalendar, local_date};
use crate::catalogue::{SubmittedDocument, demo_catalogue};
use crate::dossier::{Actor, Applicant, Command, LookupKey, NewDossier, Role};
use crate::i18n::Lang;
use crate::ids::DossierCode;
use crate::intake::CounterDossier;

fn procedure(code: &str) -> Procedure {
    demo_catalogue()
        .into_iter()
        .find(|p| p.code == code)
        .unwrap()
}

fn officer(p: &Procedure) -> Actor {
    Actor {
        role: Role::Officer,
        subject: "officer-1".into(),
        owner: None,
        agency: Some(p.agency.clone()),
        assurance: 2,
    }
}

fn doc(code: &str, source: DocumentSource) -> SubmittedDocument {
    SubmittedDocument {
        code: code.into(),
        source,
        reference: "r".into(),
    }
}

fn online(p: &Procedure, now: Timestamp, documents: Vec<SubmittedDocument>) -> Dossier {
    Dossier::submit(
        p,
        NewDossier {
            lookup_key: LookupKey::from_random(7),
            id: Uuid::now_v7(),
            code: DossierCode::new(&p.agency, local_date(now), 1),
            applicant: Applicant {
                subject: "citizen-1".into(),
                phone: None,
                account: None,
            },
            form: BTreeMap::new(),
            documents,
            submitted_at: now,
        },
    )
    .0
}

fn counter(p: &Procedure, now: Timestamp, documents: Vec<SubmittedDocument>) -> Dossier {
    Dossier::register_at_counter(
        p,
        &officer(p),
        CounterDossier {
            id: Uuid::now_v7(),
            code: DossierCode::new(&p.agency, local_date(now), 2),
            lookup_key: LookupKey::from_random(9),
            applicant: Applicant {
                subject: "citizen:abc".into(),
                phone: None,
                account: None,
            },
            form: BTreeMap::new(),
            documents,
            channel: IntakeChannel::Counter,
        },
        now,
        WorkingCalendar::vietnam(),
    )
    .unwrap()
    .0
}

fn run(d: &Dossier, p: &Procedure, cmd: Command, now: Timestamp) -> Dossier {
    d.apply(&officer(p), &cmd, now, WorkingCalendar::vietnam())
        .unwrap()
        .0
}

fn counts(pairs: &[(&str, i64)]) -> Counts {
    let mut c = Counts::default();
    for (k, v) in pairs {
        c.add(k, *v);
    }
    c
}

#[test]
fn an_online_dossier_counts_where_and_when_it_was_filed() {
    let p = procedure("1.001193");
    // 23:30 on 31 January in Vietnam is still January there.
    let now: Timestamp = "2026-01-31T16:30:00Z".parse().unwrap();
    let d = online(
        &p,
        now,
        vec![
            doc("to-khai", DocumentSource::Upload),
            doc("cccd", DocumentSource::Store),
        ],
    );
    let c = contribution(&d);
    assert_eq!(
        c.row.month,
        Month {
            year: 2026,
            month: 1
        }
    );
    assert_eq!(c.row.agency, p.agency);
    assert_eq!(
        c.counts,
        counts(&[
            ("filed", 1),
            ("filed_online", 1),
            (&format!("online_procedure:{}", p.code), 1),
            ("documents", 2),
            ("documents_digitised", 2),
            ("documents_reused", 1),
            ("dossiers_digitised", 1),
            ("dossiers_reused", 1),
        ])
    );
    assert!(c.counts.0.keys().all(|k| valid_name(k)), "{c:?}");
}

#[test]
fn a_counter_dossier_is_received_at_once_and_open_until_its_due_date() {
    let p = procedure("1.001193");
    let now: Timestamp = "2026-12-01T03:00:00Z".parse().unwrap();
    let d = counter(
        &p,
        now,
        vec![
            doc("to-khai", DocumentSource::Upload),
            doc("cccd", DocumentSource::Paper),
        ],
    );
    assert_eq!(
        (d.status, d.channel),
        (Status::Received, IntakeChannel::Counter)
    );
    let due = d.due_date.unwrap();
    let c = contribution(&d).counts;
    assert_eq!(c.get("filed_counter"), 1);
    assert_eq!(c.get("filed_online"), 0);
    assert_eq!(c.get("received"), 1);
    assert_eq!(c.get(&format!("open_due:{due}")), 1);
    assert_eq!((c.get("documents"), c.get("documents_digitised")), (2, 1));
    assert_eq!(c.get("dossiers_digitised"), 0, "a paper-only component");
    assert_eq!(
        c.0.keys()
            .filter(|k| k.starts_with("online_procedure:"))
            .count(),
        0
    );
    // Only an officer of the procedure's agency registers it.
    let mut other = officer(&p);
    other.agency = Some("000.00.99.H99".parse().unwrap());
    let again = Dossier::register_at_counter(
        &p,
        &other,
        CounterDossier {
            id: Uuid::now_v7(),
            code: d.code.clone(),
            lookup_key: LookupKey::from_random(1),
            applicant: d.applicant.clone(),
            form: BTreeMap::new(),
            documents: vec![],
            channel: IntakeChannel::Postal,
        },
        now,
        WorkingCalendar::vietnam(),
    );
    assert!(again.is_err());
}

#[test]
fn finishing_replaces_the_open_count_and_says_whether_on_time() {
    let p = procedure("1.001193");
    let now: Timestamp = "2026-12-01T03:00:00Z".parse().unwrap();
    let d = counter(&p, now, vec![]);
    let d = run(&d, &p, Command::Process, now);
    let due = d.due_date.unwrap();
    let done = |at: Timestamp, file: Option<Uuid>| {
        run(
            &d,
            &p,
            Command::Complete {
                result: crate::dossier::DossierResult::Approved {
                    document: None,
                    note: None,
                    file,
                },
            },
            at,
        )
    };
    let early = contribution(&done(now, Some(Uuid::nil()))).counts;
    assert_eq!(early.get("finished"), 1);
    assert_eq!(early.get("finished_on_time"), 1);
    assert_eq!(early.get("result_electronic"), 1);
    assert_eq!(early.with_prefix("open_due:").count(), 0);
    let late_at = due
        .checked_add(jiff::Span::new().days(3))
        .unwrap()
        .at(9, 0, 0, 0)
        .to_zoned(crate::calendar::vietnam_tz())
        .unwrap()
        .timestamp();
    let late = contribution(&done(late_at, None)).counts;
    assert_eq!((late.get("finished"), late.get("finished_on_time")), (1, 0));
    assert_eq!(late.get("result_electronic"), 0, "a paper result");
    // What the consumer applies: the difference, which undoes the open count.
    let diff = late.minus(&contribution(&d).counts);
    assert_eq!(diff.get(&format!("open_due:{due}")), -1);
    assert_eq!(diff.get("finished"), 1);
    assert_eq!(diff.get("filed"), 0);
}

#[test]
fn fees_are_counted_once_per_dossier_by_channel() {
    let p = procedure("2.000505");
    assert!(p.fee_at_submission);
    let now: Timestamp = "2026-12-01T03:00:00Z".parse().unwrap();
    let mut d = online(&p, now, vec![]);
    let c = contribution(&d).counts;
    assert_eq!((c.get("fee_charged"), c.get("paid_online")), (1, 0));
    for channel in [
        crate::payment::FeeChannel::Online,
        crate::payment::FeeChannel::Online,
    ] {
        d.fees.push(crate::payment::FeePaid {
            key: 0,
            amount: crate::Money::vnd(1),
            channel,
            provider: None,
            payment: None,
            receipt: "BL".into(),
            reference: None,
            at: now,
        });
    }
    let c = contribution(&d).counts;
    assert_eq!((c.get("paid_online"), c.get("paid_counter")), (1, 0));
    // A procedure without a fee at submission is charged once asked.
    let free = online(&procedure("1.001193"), now, vec![]);
    assert_eq!(contribution(&free).counts.get("fee_charged"), 0);
}

#[test]
fn counts_add_and_subtract_without_keeping_zeros() {
    let a = counts(&[("filed", 1), ("received", 1)]);
    let b = counts(&[("filed", 1), ("finished", 1)]);
    let d = b.minus(&a);
    assert_eq!(d, counts(&[("received", -1), ("finished", 1)]));
    let mut x = a.clone();
    x.add_all(&d);
    assert_eq!(x, b);
    x.add_all(&b.minus(&b));
    assert_eq!(x, b);
    assert!(a.minus(&a).is_empty());
}

#[test]
fn months_parse_and_step() {
    let m = Month::parse("2026-12").unwrap();
    assert_eq!(m.next().to_string(), "2027-01");
    assert_eq!(Month::parse("2026-01").unwrap().through(m).count(), 12);
    assert_eq!(Month::parse("2026-01").unwrap().span(m), 12);
    for bad in [
        "2026-13", "2026-00", "1999-12", "2026-1", "+026-01", "2026_01", "",
    ] {
        assert_eq!(Month::parse(bad), None, "{bad}");
    }
    assert_eq!(Month::of(date(2026, 2, 17)).to_string(), "2026-02");
}

#[test]
fn indicators_follow_the_counts_and_the_day_of_the_report() {
    let c = counts(&[
        ("filed", 10),
        ("filed_online", 5),
        ("filed_counter", 5),
        ("finished", 4),
        ("finished_on_time", 3),
        ("result_electronic", 1),
        ("open_waiting", 1),
        ("open_due:2026-12-01", 2),
        ("open_due:2026-11-30", 1),
        ("fee_charged", 4),
        ("paid_online", 1),
        ("dossiers_digitised", 8),
        ("dossiers_reused", 2),
        ("online_procedure:1.001193", 5),
    ]);
    let procs = demo_catalogue();
    let today = date(2026, 12, 1);
    let v = indicators(&c, &procs, today, &Scoring::default(), Lang::Vi);
    let get = |i: Indicator| v.iter().find(|x| x.indicator == i).unwrap().clone();
    let on_time = get(Indicator::OnTime);
    // 3 finished on time + 1 waiting + 2 due today; of 4 finished + 4 open.
    assert_eq!((on_time.numerator, on_time.denominator), (6, 8));
    assert_eq!(on_time.score, Some(15.0));
    assert_eq!(on_time.met, Some(false));
    let filing = get(Indicator::OnlineFiling);
    assert_eq!(
        (filing.value, filing.score, filing.met),
        (Some(0.5), Some(6.0), Some(true))
    );
    let pay = get(Indicator::OnlinePayment);
    assert_eq!((pay.value, pay.score), (Some(0.25), Some(0.9)));
    let dig = get(Indicator::DigitisedDossiers);
    assert_eq!((dig.value, dig.score), (Some(0.8), Some(4.0)));
    let full = procs
        .iter()
        .filter(|p| p.online_level == crate::catalogue::OnlineLevel::Full)
        .count() as i64;
    let offered = get(Indicator::ProceduresOnline);
    assert_eq!(
        (offered.numerator, offered.denominator),
        (full, procs.len() as i64)
    );
    let used = get(Indicator::OnlineProceduresUsed);
    let used_expected =
        i64::from(procs.iter().any(|p| {
            p.code == "1.001193" && p.online_level == crate::catalogue::OnlineLevel::Full
        }));
    assert_eq!((used.numerator, used.denominator), (used_expected, full));
    // A day later, the two due on 1 December are overdue.
    let v = indicators(&c, &procs, date(2026, 12, 2), &Scoring::default(), Lang::En);
    assert_eq!(v[0].numerator, 4);
    assert_eq!(v[0].name, "Dossiers settled on time");
    // Nothing counted: no value, no score.
    let none = indicators(
        &Counts::default(),
        &[],
        today,
        &Scoring::default(),
        Lang::Vi,
    );
    assert!(none.iter().all(|i| i.value.is_none() && i.score.is_none()));
}

#[test]
fn scoring_is_configuration_checked_at_start() {
    let s = Scoring::with_overrides(
        r#"{"online_filing": {"rule": {"threshold": {"at": 0.6, "points": 6, "below": 2}}, "target": 0.6}}"#,
    )
    .unwrap();
    assert_eq!(
        s.of(Indicator::OnlineFiling).rule,
        Rule::Threshold {
            at: 0.6,
            points: 6.0,
            below: 2.0
        }
    );
    assert_eq!(
        s.of(Indicator::OnTime),
        Scoring::default().of(Indicator::OnTime)
    );
    for bad in [
        r#"{"fast_service": {"rule": {"linear": {"points": 1}}, "target": 0.5}}"#,
        r#"{"on_time": {"rule": {"linear": {"points": -1}}, "target": 0.5}}"#,
        r#"{"on_time": {"rule": {"linear": {"points": 1}}, "target": 50}}"#,
        r#"{"on_time": {"rule": {"threshold": {"at": 2, "points": 1, "below": 0}}, "target": 0.5}}"#,
        "[]",
    ] {
        assert!(Scoring::with_overrides(bad).is_err(), "{bad}");
    }
}
