//! The contract of the KPI counters; run with
//! [`reports_contract_tests!`](crate::reports_contract_tests).

use std::sync::Arc;

use motcua_domain::AgencyCode;
use motcua_domain::kpi::{Contribution, Counts, Month, RowKey};
use uuid::Uuid;

use crate::StoreError;
use crate::reports::{Applied, KpiStore, total};

/// One `#[tokio::test]` per case; `$make` is an async expression giving a fresh
/// `Arc<dyn KpiStore>`.
#[macro_export]
macro_rules! reports_contract_tests {
    ($make:expr) => {
        $crate::reports_contract_tests!(@each $make;
            a_contribution_is_replaced_not_added,
            a_stale_replace_is_a_conflict_and_writes_nothing,
            rows_are_the_agencies_and_months_asked_for,
            concurrent_dossiers_of_one_row_all_count,
            reset_forgets_everything
        );
    };
    (@each $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let s = $make.await;
                $crate::reports_contract::$name(s).await;
            }
        )*
    };
}

/// An agency no other case (or test run) uses.
fn agency() -> AgencyCode {
    let n = (Uuid::now_v7().as_u128() % 90) as u32 + 10;
    let m = ((Uuid::new_v4().as_u128() >> 7) % 90) as u32 + 10;
    AgencyCode::parse(&format!(
        "K{n}.{m}.{:02}.H42",
        (Uuid::new_v4().as_u128() % 90) + 10
    ))
    .expect("an agency code")
}

fn month(s: &str) -> Month {
    Month::parse(s).expect("a month")
}

fn applied(agency: &AgencyCode, m: &str, version: u64, counts: &[(&str, i64)]) -> Applied {
    let mut c = Counts::default();
    for (k, v) in counts {
        c.add(k, *v);
    }
    Applied {
        version,
        contribution: Contribution {
            row: RowKey {
                agency: agency.clone(),
                month: month(m),
            },
            counts: c,
        },
    }
}

fn counts(pairs: &[(&str, i64)]) -> Counts {
    let mut c = Counts::default();
    for (k, v) in pairs {
        c.add(k, *v);
    }
    c
}

pub async fn a_contribution_is_replaced_not_added(s: Arc<dyn KpiStore>) {
    let a = agency();
    let d = Uuid::now_v7();
    let v1 = applied(
        &a,
        "2026-12",
        1,
        &[("filed", 1), ("open_due:2026-12-20", 1)],
    );
    s.replace(d, None, &v1).await.unwrap();
    assert_eq!(s.applied(d).await.unwrap(), Some(v1.clone()));
    let v3 = applied(&a, "2026-12", 3, &[("filed", 1), ("finished", 1)]);
    s.replace(d, Some(&v1), &v3).await.unwrap();
    assert_eq!(s.applied(d).await.unwrap(), Some(v3.clone()));
    let other = Uuid::now_v7();
    let o = applied(
        &a,
        "2026-12",
        1,
        &[("filed", 1), ("open_due:2026-12-20", 1)],
    );
    s.replace(other, None, &o).await.unwrap();
    let rows = s
        .rows(std::slice::from_ref(&a), month("2026-12"), month("2026-12"))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        rows[0],
        (
            v1.contribution.row.clone(),
            counts(&[("filed", 2), ("finished", 1), ("open_due:2026-12-20", 1)])
        )
    );
    // Back to nothing: an applied contribution of no counts (the counts go, the record
    // of the version stays).
    let gone = applied(&a, "2026-12", 4, &[]);
    s.replace(d, Some(&v3), &gone).await.unwrap();
    s.replace(other, Some(&o), &applied(&a, "2026-12", 2, &[]))
        .await
        .unwrap();
    let rows = s
        .rows(std::slice::from_ref(&a), month("2026-12"), month("2026-12"))
        .await
        .unwrap();
    assert!(total(&rows).is_empty(), "{rows:?}");
    assert_eq!(s.applied(d).await.unwrap().map(|x| x.version), Some(4));
}

pub async fn a_stale_replace_is_a_conflict_and_writes_nothing(s: Arc<dyn KpiStore>) {
    let a = agency();
    let d = Uuid::now_v7();
    let v2 = applied(&a, "2026-11", 2, &[("filed", 1), ("received", 1)]);
    s.replace(d, None, &v2).await.unwrap();
    // Someone read before v2 was applied: nothing applied then.
    let v3 = applied(&a, "2026-11", 3, &[("filed", 1), ("finished", 1)]);
    assert_eq!(s.replace(d, None, &v3).await, Err(StoreError::Conflict));
    // Or read an older record.
    let v1 = applied(&a, "2026-11", 1, &[("filed", 1)]);
    assert_eq!(
        s.replace(d, Some(&v1), &v3).await,
        Err(StoreError::Conflict)
    );
    assert_eq!(s.applied(d).await.unwrap(), Some(v2.clone()));
    let rows = s
        .rows(std::slice::from_ref(&a), month("2026-11"), month("2026-11"))
        .await
        .unwrap();
    assert_eq!(total(&rows), counts(&[("filed", 1), ("received", 1)]));
}

pub async fn rows_are_the_agencies_and_months_asked_for(s: Arc<dyn KpiStore>) {
    let (a, b) = (agency(), agency());
    for (i, (ag, m)) in [
        (&a, "2026-01"),
        (&a, "2026-06"),
        (&a, "2027-01"),
        (&b, "2026-06"),
    ]
    .into_iter()
    .enumerate()
    {
        let x = applied(ag, m, 1, &[("filed", i as i64 + 1)]);
        s.replace(Uuid::now_v7(), None, &x).await.unwrap();
    }
    let rows = s
        .rows(std::slice::from_ref(&a), month("2026-01"), month("2026-12"))
        .await
        .unwrap();
    let keys: Vec<String> = rows
        .iter()
        .map(|(k, _)| format!("{}/{}", k.agency.as_str(), k.month))
        .collect();
    assert_eq!(
        keys,
        vec![
            format!("{}/2026-01", a.as_str()),
            format!("{}/2026-06", a.as_str())
        ]
    );
    assert_eq!(total(&rows).get("filed"), 3);
    let both = s
        .rows(&[a.clone(), b.clone()], month("2026-06"), month("2027-01"))
        .await
        .unwrap();
    assert_eq!(total(&both).get("filed"), 2 + 3 + 4);
    assert!(
        s.rows(&[], month("2026-01"), month("2027-12"))
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn concurrent_dossiers_of_one_row_all_count(s: Arc<dyn KpiStore>) {
    let a = agency();
    let mut tasks = Vec::new();
    for i in 0..40u64 {
        let (s, a) = (s.clone(), a.clone());
        tasks.push(tokio::spawn(async move {
            let d = Uuid::now_v7();
            let v1 = applied(&a, "2026-03", 1, &[("filed", 1), ("received", 1)]);
            s.replace(d, None, &v1).await.unwrap();
            if i % 2 == 0 {
                let v2 = applied(&a, "2026-03", 2, &[("filed", 1), ("finished", 1)]);
                s.replace(d, Some(&v1), &v2).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rows = s
        .rows(&[a], month("2026-03"), month("2026-03"))
        .await
        .unwrap();
    assert_eq!(
        total(&rows),
        counts(&[("filed", 40), ("received", 20), ("finished", 20)])
    );
}

pub async fn reset_forgets_everything(s: Arc<dyn KpiStore>) {
    let a = agency();
    let d = Uuid::now_v7();
    s.replace(d, None, &applied(&a, "2026-05", 1, &[("filed", 1)]))
        .await
        .unwrap();
    s.reset().await.unwrap();
    assert_eq!(s.applied(d).await.unwrap(), None);
    assert!(
        s.rows(&[a], month("2026-05"), month("2026-05"))
            .await
            .unwrap()
            .is_empty()
    );
}
