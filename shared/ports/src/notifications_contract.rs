//! The contract of the delivery records and the send rate; run with
//! [`notifications_contract_tests!`](crate::notifications_contract_tests).

use jiff::{SignedDuration, Timestamp};
use motcua_domain::Lang;
use motcua_domain::notify::{Channel, DeliveryStatus, Topic};
use motcua_domain::templates::Content;
use uuid::Uuid;

use crate::StoreError;
use crate::notifications::{Delivery, NotificationPorts, Recipient};

/// One `#[tokio::test]` per case; `$make` is an async expression giving fresh
/// [`NotificationPorts`] on one store.
#[macro_export]
macro_rules! notifications_contract_tests {
    ($make:expr) => {
        $crate::notifications_contract_tests!(@each $make;
            deliveries_are_planned_once_per_key,
            updates_are_optimistic,
            due_lists_unsettled_deliveries_in_time_order,
            a_dossiers_deliveries_come_oldest_first,
            receipts_find_their_delivery,
            the_send_rate_counts_per_bucket_and_second,
            periods_count_their_own_limit
        );
    };
    (@each $make:expr; $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let ports = $make.await;
                $crate::notifications_contract::$name(ports).await;
            }
        )*
    };
}

fn t(secs: i64) -> Timestamp {
    Timestamp::from_second(1_773_712_800 + secs).expect("valid")
}

pub fn delivery(dossier: Uuid, channel: Channel, due: Timestamp) -> Delivery {
    let event = Uuid::now_v7();
    Delivery {
        id: Uuid::now_v7(),
        key: Delivery::key_of(&event.to_string(), channel, &Recipient::Applicant),
        event_id: Some(event),
        dossier_id: Some(dossier),
        topic: Topic::Received,
        channel,
        recipient: Recipient::Applicant,
        masked_to: None,
        lang: Lang::Vi,
        content: Content::Sms {
            text: "DVC: Ho so G22.91-260317-0042 da duoc tiep nhan.".into(),
        },
        mandatory: true,
        status: DeliveryStatus::Queued,
        reason: None,
        attempts: 0,
        provider: None,
        provider_id: None,
        created_at: t(0),
        due_at: due,
        expires_at: t(86_400),
        updated_at: t(0),
        version: 1,
    }
}

pub async fn deliveries_are_planned_once_per_key(p: NotificationPorts) {
    let dossier = Uuid::now_v7();
    let a = delivery(dossier, Channel::Sms, t(0));
    let b = delivery(dossier, Channel::Email, t(0));
    let planned = p.deliveries.plan(&[a.clone(), b.clone()]).await.unwrap();
    assert_eq!(planned.len(), 2);
    assert!(planned.iter().all(|(_, new)| *new));
    assert_eq!(planned[0].0, a);
    // The same keys again (a redelivered event: new ids, same keys): nothing new, and
    // what is stored comes back.
    let mut again = a.clone();
    again.id = Uuid::now_v7();
    let mut fresh = delivery(dossier, Channel::Zalo, t(0));
    fresh.key = format!("{}-other", fresh.key);
    let planned = p
        .deliveries
        .plan(&[again.clone(), fresh.clone()])
        .await
        .unwrap();
    assert_eq!(planned[0], (a.clone(), false));
    assert_eq!(planned[1], (fresh.clone(), true));
    assert_eq!(p.deliveries.get(again.id).await.unwrap(), None);
    assert_eq!(p.deliveries.get(b.id).await.unwrap(), Some(b));
    assert!(p.deliveries.plan(&[]).await.unwrap().is_empty());
    // Two planners of one key at once: one stores it.
    let c = delivery(dossier, Channel::Sms, t(0));
    let mut c2 = c.clone();
    c2.id = Uuid::now_v7();
    let (r1, r2) = tokio::join!(
        p.deliveries.plan(std::slice::from_ref(&c)),
        p.deliveries.plan(std::slice::from_ref(&c2))
    );
    let (r1, r2) = (r1.unwrap(), r2.unwrap());
    assert_eq!(u8::from(r1[0].1) + u8::from(r2[0].1), 1);
    assert_eq!(r1[0].0.id, r2[0].0.id);
}

pub async fn updates_are_optimistic(p: NotificationPorts) {
    let d = delivery(Uuid::now_v7(), Channel::Sms, t(0));
    p.deliveries.plan(std::slice::from_ref(&d)).await.unwrap();
    let mut claim = d.clone();
    claim.status = DeliveryStatus::Sending;
    claim.attempts = 1;
    claim.due_at = t(60);
    claim.version = 2;
    // Two dispatchers claim the same attempt: one wins.
    let (a, b) = tokio::join!(p.deliveries.update(&claim), p.deliveries.update(&claim));
    assert!(a.is_ok() != b.is_ok(), "{a:?} {b:?}");
    assert_eq!(a.err().or(b.err()), Some(StoreError::Conflict));
    let mut sent = claim.clone();
    sent.status = DeliveryStatus::Sent;
    sent.provider = Some("sns".into());
    sent.provider_id = Some("msg-1".into());
    sent.masked_to = Some("+84*****5678".into());
    sent.version = 3;
    p.deliveries.update(&sent).await.unwrap();
    assert_eq!(p.deliveries.get(d.id).await.unwrap(), Some(sent.clone()));
    // A stale writer changes nothing.
    assert_eq!(p.deliveries.update(&claim).await, Err(StoreError::Conflict));
    // An unknown delivery is no update.
    let stranger = delivery(Uuid::now_v7(), Channel::Sms, t(0));
    assert_eq!(
        p.deliveries.update(&stranger).await,
        Err(StoreError::Conflict)
    );
}

pub async fn due_lists_unsettled_deliveries_in_time_order(p: NotificationPorts) {
    // Other tests of the same store may have left due deliveries: only ours are counted.
    let dossier = Uuid::now_v7();
    let late = delivery(dossier, Channel::Sms, t(300));
    let early = delivery(dossier, Channel::Email, t(100));
    let mut deferred = delivery(dossier, Channel::Zalo, t(200));
    deferred.status = DeliveryStatus::Deferred;
    let mut done = delivery(dossier, Channel::Sms, t(50));
    done.key = format!("{}-done", done.key);
    p.deliveries
        .plan(&[late.clone(), early.clone(), deferred.clone(), done.clone()])
        .await
        .unwrap();
    done.status = DeliveryStatus::Sent;
    done.version = 2;
    p.deliveries.update(&done).await.unwrap();
    let ours = |v: Vec<Delivery>| -> Vec<Uuid> {
        v.into_iter()
            .filter(|d| d.dossier_id == Some(dossier))
            .map(|d| d.id)
            .collect()
    };
    assert!(ours(p.deliveries.due(t(99), 1000).await.unwrap()).is_empty());
    assert_eq!(
        ours(p.deliveries.due(t(250), 1000).await.unwrap()),
        [early.id, deferred.id]
    );
    assert_eq!(
        ours(p.deliveries.due(t(1000), 1000).await.unwrap()),
        [early.id, deferred.id, late.id]
    );
    // A claimed attempt is due again when its lease ends; a settled one never.
    let mut claimed = early.clone();
    claimed.status = DeliveryStatus::Sending;
    claimed.due_at = t(900);
    claimed.version = 2;
    p.deliveries.update(&claimed).await.unwrap();
    assert_eq!(
        ours(p.deliveries.due(t(800), 1000).await.unwrap()),
        [deferred.id, late.id]
    );
    assert_eq!(
        ours(p.deliveries.due(t(1000), 1000).await.unwrap()),
        [deferred.id, late.id, early.id]
    );
    let mut expired = late.clone();
    expired.status = DeliveryStatus::Expired;
    expired.reason = Some("not sent within 24 h".into());
    expired.version = 2;
    p.deliveries.update(&expired).await.unwrap();
    assert_eq!(
        ours(p.deliveries.due(t(1000), 1000).await.unwrap()),
        [deferred.id, early.id]
    );
    // The limit holds.
    assert!(p.deliveries.due(t(1000), 1).await.unwrap().len() <= 1);
}

pub async fn a_dossiers_deliveries_come_oldest_first(p: NotificationPorts) {
    let dossier = Uuid::now_v7();
    let mut ids = Vec::new();
    for i in 0..5 {
        let mut d = delivery(dossier, Channel::ALL[i % 3], t(i as i64));
        d.created_at = t(i as i64);
        ids.push(d.id);
        p.deliveries.plan(&[d]).await.unwrap();
    }
    p.deliveries
        .plan(&[delivery(Uuid::now_v7(), Channel::Sms, t(0))])
        .await
        .unwrap();
    let got: Vec<Uuid> = p
        .deliveries
        .of_dossier(dossier)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(got, ids);
    assert!(
        p.deliveries
            .of_dossier(Uuid::now_v7())
            .await
            .unwrap()
            .is_empty()
    );
}

pub async fn receipts_find_their_delivery(p: NotificationPorts) {
    let d = delivery(Uuid::now_v7(), Channel::Sms, t(0));
    p.deliveries.plan(std::slice::from_ref(&d)).await.unwrap();
    let provider_id = format!("gw-{}", d.id);
    assert_eq!(
        p.deliveries
            .by_provider_id("gateway", &provider_id)
            .await
            .unwrap(),
        None
    );
    let mut sent = d.clone();
    sent.status = DeliveryStatus::Sent;
    sent.provider = Some("gateway".into());
    sent.provider_id = Some(provider_id.clone());
    sent.version = 2;
    p.deliveries.update(&sent).await.unwrap();
    assert_eq!(
        p.deliveries
            .by_provider_id("gateway", &provider_id)
            .await
            .unwrap(),
        Some(sent.clone())
    );
    // Another provider's id space is another.
    assert_eq!(
        p.deliveries
            .by_provider_id("zalo", &provider_id)
            .await
            .unwrap(),
        None
    );
    let mut delivered = sent.clone();
    delivered.status = DeliveryStatus::Delivered;
    delivered.version = 3;
    p.deliveries.update(&delivered).await.unwrap();
    assert_eq!(
        p.deliveries
            .by_provider_id("gateway", &provider_id)
            .await
            .unwrap()
            .map(|d| d.status),
        Some(DeliveryStatus::Delivered)
    );
}

pub async fn the_send_rate_counts_per_bucket_and_second(p: NotificationPorts) {
    let bucket = format!("sms:test:{}", Uuid::now_v7());
    let other = format!("email:test:{}", Uuid::now_v7());
    // 30 a second: ten windows of three.
    let at = t(10) + SignedDuration::from_millis(250);
    // Ten at once against a window of three: three pass, counted before the work.
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (rate, bucket) = (p.rate.clone(), bucket.clone());
        tasks.push(tokio::spawn(
            async move { rate.take(&bucket, 30, at).await },
        ));
    }
    let mut granted = 0;
    for task in tasks {
        match task.await.unwrap().unwrap() {
            Ok(()) => granted += 1,
            Err(wait) => {
                // Until the next window, at 300 ms.
                assert_eq!(wait, SignedDuration::from_millis(50));
            }
        }
    }
    assert_eq!(granted, 3);
    // Another bucket is another count.
    assert_eq!(p.rate.take(&other, 30, at).await.unwrap(), Ok(()));
    // Asking every 10 ms through a whole second: exactly the second's 30, spread.
    let mut per_window = std::collections::BTreeMap::new();
    for ms in (0..1000).step_by(10) {
        let now = t(20) + SignedDuration::from_millis(ms);
        if p.rate.take(&bucket, 30, now).await.unwrap().is_ok() {
            *per_window.entry(ms / 100).or_insert(0) += 1;
        }
    }
    assert_eq!(per_window.values().sum::<i32>(), 30);
    assert!(per_window.values().all(|n| *n == 3), "{per_window:?}");
}

pub async fn periods_count_their_own_limit(p: NotificationPorts) {
    let bucket = format!("courtesy:owner-{}", Uuid::now_v7());
    // Five at once against a limit of two: two pass.
    let mut tasks = Vec::new();
    for _ in 0..5 {
        let (rate, bucket) = (p.rate.clone(), bucket.clone());
        tasks.push(tokio::spawn(async move {
            rate.take_in(&bucket, 20_000, 2).await
        }));
    }
    let mut granted = 0;
    for t in tasks {
        if t.await.unwrap().unwrap() {
            granted += 1;
        }
    }
    assert_eq!(granted, 2);
    // The next period is another.
    assert!(p.rate.take_in(&bucket, 20_001, 2).await.unwrap());
}
