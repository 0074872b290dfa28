//! For any workload of online and counter dossiers going through their lifecycle, fees
//! paid online and at the counter, supplements, and events delivered late, twice and out
//! of order, the counters the consumer keeps equal both the sum of the dossiers' current
//! contributions and what a rebuild computes.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use motcua_domain::calendar::{WorkingCalendar, local_date};
use motcua_domain::catalogue::demo_catalogue;
use motcua_domain::dossier::{Applicant, DossierResult, LookupKey, NewDossier};
use motcua_domain::intake::{CounterDossier, IntakeChannel};
use motcua_domain::kpi::{Counts, Month, RowKey, contribution};
use motcua_domain::payment::Provider;
use motcua_domain::{
    Actor, Command, DocumentSource, Dossier, DossierCode, EventEnvelope, Role, SubmittedDocument,
};
use motcua_embedded::EmbeddedStore;
use motcua_ports::SubmissionPorts;
use motcua_reports::{ReportConfig, ReportState};
use proptest::prelude::*;
use uuid::Uuid;

struct World {
    ports: SubmissionPorts,
    state: ReportState,
    dossiers: Vec<Uuid>,
    pending: Vec<EventEnvelope>,
    delivered: Vec<EventEnvelope>,
    seq: u32,
}

async fn world() -> World {
    let dir = std::env::temp_dir().join(format!("motcua-kpi-prop-{}", Uuid::now_v7()));
    let store = EmbeddedStore::open(&dir).unwrap();
    let ports = store.submission_ports();
    for p in demo_catalogue() {
        ports.catalogue.put_procedure(&p).await.unwrap();
    }
    let auth = Arc::new(
        motcua_http::Authenticator::new(
            "motcua",
            "motcua",
            &[b"reports-test-secret-0123456789abcdef".to_vec()],
        )
        .unwrap(),
    );
    let state = ReportState {
        dossiers: ports.dossiers.clone(),
        catalogue: ports.catalogue.clone(),
        kpi: Arc::new(store.clone()),
        auth,
        clock: Arc::new(motcua_http::SystemClock::default()),
        config: Arc::new(ReportConfig::default()),
    };
    World {
        ports,
        state,
        dossiers: Vec::new(),
        pending: Vec::new(),
        delivered: Vec::new(),
        seq: 0,
    }
}

fn officer(d: &Dossier) -> Actor {
    Actor {
        role: Role::Officer,
        subject: "officer-1".into(),
        owner: None,
        agency: Some(d.agency.clone()),
        assurance: 2,
    }
}

fn citizen() -> Actor {
    Actor {
        role: Role::Citizen,
        subject: "citizen-1".into(),
        owner: None,
        agency: None,
        assurance: 2,
    }
}

#[derive(Debug, Clone)]
enum Op {
    Online {
        procedure: usize,
        sources: Vec<u8>,
    },
    Counter {
        procedure: usize,
        paper: Vec<bool>,
        postal: bool,
    },
    Act {
        dossier: usize,
        action: u8,
    },
    Deliver {
        pick: usize,
        keep: bool,
    },
    Wait {
        hours: u16,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (0..9usize, prop::collection::vec(0..3u8, 0..3))
            .prop_map(|(procedure, sources)| Op::Online { procedure, sources }),
        1 => (0..9usize, prop::collection::vec(any::<bool>(), 0..3), any::<bool>())
            .prop_map(|(procedure, paper, postal)| Op::Counter { procedure, paper, postal }),
        5 => (0..12usize, 0..13u8).prop_map(|(dossier, action)| Op::Act { dossier, action }),
        3 => (0..64usize, any::<bool>()).prop_map(|(pick, keep)| Op::Deliver { pick, keep }),
        1 => (1..200u16).prop_map(|hours| Op::Wait { hours }),
    ]
}

impl World {
    async fn create(&mut self, d: Dossier, h: motcua_domain::HistoryEntry) {
        let e = EventEnvelope::dossier(&d, &h);
        self.ports.dossiers.create(&d, &h, &e).await.unwrap();
        self.dossiers.push(d.id);
        self.pending.push(e);
    }

    fn code(&mut self, d: &motcua_domain::Procedure, now: Timestamp) -> DossierCode {
        self.seq += 1;
        DossierCode::new(&d.agency, local_date(now), self.seq)
    }

    async fn step(&mut self, op: &Op, now: Timestamp) {
        let cal = WorkingCalendar::vietnam();
        let catalogue = demo_catalogue();
        match op {
            Op::Online { procedure, sources } => {
                let p = &catalogue[*procedure % catalogue.len()];
                let documents = p
                    .documents
                    .iter()
                    .zip(sources)
                    .map(|(r, s)| SubmittedDocument {
                        code: r.code.clone(),
                        source: [
                            DocumentSource::Upload,
                            DocumentSource::Store,
                            DocumentSource::Dossier,
                        ][*s as usize],
                        reference: "r".into(),
                    })
                    .collect();
                let code = self.code(p, now);
                let (d, h) = Dossier::submit(
                    p,
                    NewDossier {
                        id: Uuid::now_v7(),
                        code,
                        lookup_key: LookupKey::from_random(1),
                        applicant: Applicant {
                            subject: "citizen-1".into(),
                            phone: None,
                            account: None,
                        },
                        form: BTreeMap::new(),
                        documents,
                        submitted_at: now,
                    },
                );
                self.create(d, h).await;
            }
            Op::Counter {
                procedure,
                paper,
                postal,
            } => {
                let p = &catalogue[*procedure % catalogue.len()];
                let documents = p
                    .documents
                    .iter()
                    .zip(paper)
                    .map(|(r, paper)| SubmittedDocument {
                        code: r.code.clone(),
                        source: if *paper {
                            DocumentSource::Paper
                        } else {
                            DocumentSource::Upload
                        },
                        reference: String::new(),
                    })
                    .collect();
                let code = self.code(p, now);
                let officer = Actor {
                    role: Role::Officer,
                    subject: "officer-1".into(),
                    owner: None,
                    agency: Some(p.agency.clone()),
                    assurance: 2,
                };
                let (d, h) = Dossier::register_at_counter(
                    p,
                    &officer,
                    CounterDossier {
                        id: Uuid::now_v7(),
                        code,
                        lookup_key: LookupKey::from_random(2),
                        applicant: Applicant {
                            subject: "citizen:x".into(),
                            phone: None,
                            account: None,
                        },
                        form: BTreeMap::new(),
                        documents,
                        channel: if *postal {
                            IntakeChannel::Postal
                        } else {
                            IntakeChannel::Counter
                        },
                    },
                    now,
                    cal,
                )
                .unwrap();
                self.create(d, h).await;
            }
            Op::Act { dossier, action } => {
                if self.dossiers.is_empty() {
                    return;
                }
                let id = self.dossiers[dossier % self.dossiers.len()];
                let d = self.ports.dossiers.get(id).await.unwrap().unwrap();
                if *action == 12 {
                    // A fee paid online, as the payments function settles it.
                    let Some(due) = d.fee_due() else { return };
                    let p = d.new_payment(Uuid::now_v7(), due, Provider::Vnpay, "vi", now, now);
                    let Some((next, h)) = d.pay_online(&p, &d.next_receipt(), now) else {
                        return;
                    };
                    let mut e = EventEnvelope::dossier(&next, &h);
                    e.kind = "payment.succeeded".into();
                    self.ports.dossiers.transition(&next, &h, &e).await.unwrap();
                    self.pending.push(e);
                    return;
                }
                let (actor, cmd) = match action {
                    0 => (officer(&d), Command::Receive),
                    1 => (officer(&d), Command::Process),
                    2 => (officer(&d), Command::RequestPayment { amount: None }),
                    3 => (
                        officer(&d),
                        Command::ConfirmPayment {
                            reference: Some("BL-1".into()),
                        },
                    ),
                    4 => (
                        officer(&d),
                        Command::RequestSupplement {
                            items: vec!["x".into()],
                            note: None,
                        },
                    ),
                    5 => (
                        citizen(),
                        Command::Supplement {
                            documents: vec![SubmittedDocument {
                                code: "to-khai".into(),
                                source: DocumentSource::Upload,
                                reference: "u".into(),
                            }],
                            note: None,
                        },
                    ),
                    6 => (
                        officer(&d),
                        Command::Complete {
                            result: DossierResult::Approved {
                                document: None,
                                note: None,
                                file: Some(Uuid::nil()),
                            },
                        },
                    ),
                    7 => (
                        officer(&d),
                        Command::Complete {
                            result: DossierResult::Rejected { reason: "r".into() },
                        },
                    ),
                    8 => (officer(&d), Command::ReturnResult),
                    9 => (citizen(), Command::Withdraw { reason: None }),
                    10 => (officer(&d), Command::Stop { reason: "r".into() }),
                    _ => (officer(&d), Command::Resume),
                };
                let Ok((next, h)) = d.apply(&actor, &cmd, now, cal) else {
                    return;
                };
                let e = EventEnvelope::dossier(&next, &h);
                self.ports.dossiers.transition(&next, &h, &e).await.unwrap();
                self.pending.push(e);
            }
            Op::Deliver { pick, keep } => {
                if self.pending.is_empty() {
                    return;
                }
                let i = pick % self.pending.len();
                let e = if *keep {
                    self.pending[i].clone()
                } else {
                    self.pending.remove(i)
                };
                motcua_reports::consume::apply_event(&self.state, &e)
                    .await
                    .unwrap();
                self.delivered.push(e);
            }
            Op::Wait { .. } => {}
        }
    }

    async fn rows(&self) -> Vec<(RowKey, Counts)> {
        let agencies: Vec<_> = demo_catalogue().into_iter().map(|p| p.agency).collect();
        self.state
            .kpi
            .rows(
                &agencies,
                Month::parse("2026-01").unwrap(),
                Month::parse("2028-12").unwrap(),
            )
            .await
            .unwrap()
    }
}

fn run(ops: Vec<Op>, order: Vec<usize>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut w = world().await;
        let mut now: Timestamp = "2026-11-02T02:00:00Z".parse().unwrap();
        for op in &ops {
            if let Op::Wait { hours } = op {
                now += SignedDuration::from_hours(*hours as i64);
            }
            now += SignedDuration::from_mins(7);
            w.step(op, now).await;
        }
        // What is left arrives in some order; some events that came already come again.
        let mut rest = std::mem::take(&mut w.pending);
        rest.extend(w.delivered.iter().take(order.len()).cloned());
        for (k, pick) in order.iter().enumerate() {
            if rest.is_empty() {
                break;
            }
            let e = rest.remove((pick + k) % rest.len());
            motcua_reports::consume::apply_event(&w.state, &e)
                .await
                .unwrap();
        }
        for e in rest {
            motcua_reports::consume::apply_event(&w.state, &e)
                .await
                .unwrap();
        }
        // The truth: each dossier's contribution as it is now.
        let mut truth: BTreeMap<RowKey, Counts> = BTreeMap::new();
        for id in &w.dossiers {
            let d = w.ports.dossiers.get(*id).await.unwrap().unwrap();
            let c = contribution(&d);
            truth.entry(c.row).or_default().add_all(&c.counts);
        }
        truth.retain(|_, c| !c.is_empty());
        let incremental = w.rows().await;
        let truth: Vec<_> = truth.into_iter().collect();
        prop_assert_eq!(&incremental, &truth);
        let rebuilt = motcua_reports::rebuild::rebuild(&w.state).await.unwrap();
        prop_assert_eq!(rebuilt.dossiers, w.dossiers.len() as u64);
        prop_assert_eq!(w.rows().await, incremental);
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn incremental_counters_equal_the_rebuild(
        ops in prop::collection::vec(op(), 1..80),
        order in prop::collection::vec(0..1000usize, 0..40),
    ) {
        run(ops, order)?;
    }
}
