//! Dossiers and the files they cite, over HTTP through the real runner on both backends:
//! only verified uploads of their own applicant that no other dossier cites, documents of
//! their own store, results of their own dossiers; an officer's result file reaching the
//! applicant's store.

use motcua_tests::uploads::Env;
use motcua_tests::{Backend, SAMPLE_PDF, sha256_b64};
use reqwest::StatusCode;
use serde_json::{Value, json};

const AGENCY: &str = "000.00.04.H42";
const OTHER_AGENCY: &str = "000.01.41.H42";

async fn dossiers_cite_only_verified_files_of_their_own_not_cited_elsewhere(backend: Backend) {
    let env = Env::start("up-cite", backend, &[]);
    let submit = |token: String, reference: String| {
        let mut body = motcua_tests::criminal_record();
        body["documents"][0]["reference"] = json!(reference);
        let http = env.http.clone();
        let url = env.runner.url("/v1/dossiers");
        async move {
            let r = http
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = r.status();
            (status, r.json::<Value>().await.unwrap())
        }
    };
    let refused = |p: &Value, problem: &str| {
        let e = &p["errors"][0];
        assert_eq!(
            (e["document"].as_str(), e["problem"].as_str()),
            (Some("to-khai"), Some(problem)),
            "{p}"
        );
    };
    // Waiting for its file.
    let (_, waiting) = env
        .open_slot(&env.citizen, &Env::slot_for(SAMPLE_PDF))
        .await;
    let (status, p) = submit(env.citizen.clone(), waiting["id"].as_str().unwrap().into()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    refused(&p, "upload_not_verified");
    // Rejected.
    let slot = json!({"file_name": "a.png", "content_type": "image/png",
        "size": SAMPLE_PDF.len(), "sha256": sha256_b64(SAMPLE_PDF)});
    let bad = env
        .runner
        .upload(&env.http, &env.citizen, slot, SAMPLE_PDF)
        .await;
    assert_eq!(bad["status"], "rejected");
    let (status, p) = submit(env.citizen.clone(), bad["id"].as_str().unwrap().into()).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    refused(&p, "upload_not_verified");
    // Someone else's, or no such upload: the same answer.
    let theirs = env
        .runner
        .verified_pdf(&env.http, &env.other_citizen, "2.000505", "to-khai")
        .await;
    for reference in [
        theirs.clone(),
        uuid::Uuid::new_v4().to_string(),
        "upload-demo-0001".into(),
    ] {
        let (status, p) = submit(env.citizen.clone(), reference).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        refused(&p, "upload_unknown");
    }
    // Uploaded for another document of the procedure.
    let proxy = env
        .runner
        .verified_pdf(&env.http, &env.citizen, "2.000505", "giay-uy-quyen")
        .await;
    let (status, p) = submit(env.citizen.clone(), proxy).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    refused(&p, "upload_for_another_document");
    // Cited once; a second dossier may not cite it, even when both race.
    let mine = env
        .runner
        .verified_pdf(&env.http, &env.citizen, "2.000505", "to-khai")
        .await;
    let (a, b) = tokio::join!(
        submit(env.citizen.clone(), mine.clone()),
        submit(env.citizen.clone(), mine.clone())
    );
    let mut statuses = [a.0, b.0];
    statuses.sort();
    assert_eq!(
        statuses,
        [StatusCode::CREATED, StatusCode::UNPROCESSABLE_ENTITY],
        "{a:?} {b:?}"
    );
    let loser = if a.0 == StatusCode::CREATED { b.1 } else { a.1 };
    refused(&loser, "upload_cited");
    let (_, list) = env.get(&env.citizen, "/v1/dossiers").await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        1,
        "one dossier: {list}"
    );
}

async fn stored_documents_are_reused_with_their_digitisation_state(backend: Backend) {
    let env = Env::start("up-store", backend, &[]);
    // An earlier upload sits in the citizen's store.
    let old = env
        .runner
        .verified_pdf(&env.http, &env.citizen, "1.000894", "xac-nhan-hon-nhan")
        .await;
    let (status, docs) = env.get(&env.citizen, "/v1/me/documents").await;
    assert_eq!(status, StatusCode::OK);
    let item = &docs["items"][0];
    assert_eq!(
        (item["id"].as_str(), item["kind"].as_str()),
        (Some(old.as_str()), Some("xac-nhan-hon-nhan"))
    );
    assert!(item.get("owner").is_none(), "{item}");
    let (_, theirs) = env.get(&env.other_citizen, "/v1/me/documents").await;
    assert_eq!(theirs["items"], json!([]));
    let form = json!({"husband_id": "001203004567", "wife_id": "037153000257",
        "contact_phone": "0912345678"});
    let to_khai = env
        .runner
        .verified_pdf(&env.http, &env.citizen, "1.000894", "to-khai")
        .await;
    let body = |store_ref: &str| {
        json!({"procedure_code": "1.000894", "form": form, "documents": [
            {"code": "to-khai", "source": "upload", "reference": to_khai},
            {"code": "xac-nhan-hon-nhan", "source": "store", "reference": store_ref}]})
    };
    let post = |token: &str, b: Value| {
        env.http
            .post(env.runner.url("/v1/dossiers"))
            .bearer_auth(token)
            .json(&b)
            .send()
    };
    // Someone else's stored document, or none: refused, nothing filed.
    let foreign = env
        .runner
        .verified_pdf(
            &env.http,
            &env.other_citizen,
            "1.000894",
            "xac-nhan-hon-nhan",
        )
        .await;
    for reference in [foreign.as_str(), "nope"] {
        let r = post(&env.citizen, body(reference)).await.unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["errors"][0]["problem"], "stored_unknown", "{p}");
    }
    // A component the catalogue does not mark reusable must be uploaded.
    let mut not_reusable = body(&old);
    not_reusable["documents"][0]["source"] = json!("store");
    let r = post(&env.citizen, not_reusable).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = post(&env.citizen, body(&old)).await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    let created: Value = r.json().await.unwrap();
    let (_, d) = env
        .get(
            &env.citizen,
            &format!("/v1/dossiers/{}", created["id"].as_str().unwrap()),
        )
        .await;
    let states: Vec<(String, u64)> = d["documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["code"].as_str().unwrap().to_owned(),
                x["digitisation_state"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("to-khai".to_owned(), 1),
            ("xac-nhan-hon-nhan".to_owned(), 2)
        ]
    );
}

async fn an_officers_result_file_reaches_the_applicant_and_is_reused(backend: Backend) {
    let env = Env::start("up-result", backend, &[]);
    let officer = env.runner.token("officer", "officer-ha", Some(AGENCY));
    let other_officer = env
        .runner
        .token("officer", "officer-tuan", Some(OTHER_AGENCY));
    let body = env
        .runner
        .criminal_record_for(&env.http, &env.citizen)
        .await;
    let post = |token: &str, path: String, b: Value| {
        env.http
            .post(env.runner.url(&path))
            .bearer_auth(token)
            .json(&b)
            .send()
    };
    let r = post(&env.citizen, "/v1/dossiers".into(), body)
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let dossier: Value = r.json().await.unwrap();
    let id = dossier["id"].as_str().unwrap().to_owned();
    for action in [json!({"action": "receive"}), json!({"action": "process"})] {
        let r = post(&officer, format!("/v1/dossiers/{id}/actions"), action)
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    // The certificate, uploaded by the officer.
    let cert = env
        .runner
        .upload(&env.http, &officer, Env::slot_for(SAMPLE_PDF), SAMPLE_PDF)
        .await;
    assert_eq!(cert["status"], "verified", "{cert}");
    let cert_id = cert["id"].as_str().unwrap().to_owned();
    let complete = |file: &str| {
        json!({"action": "complete",
        "result": {"decision": "approved", "document": "LLTP-2026-1", "file": file}})
    };
    // Not the officer's own file (the citizen's, another officer's): refused, nothing changes.
    let citizens = env
        .runner
        .verified_pdf(&env.http, &env.citizen, "2.000505", "to-khai")
        .await;
    let theirs = env
        .runner
        .upload(
            &env.http,
            &other_officer,
            Env::slot_for(SAMPLE_PDF),
            SAMPLE_PDF,
        )
        .await;
    for file in [citizens.as_str(), theirs["id"].as_str().unwrap()] {
        let r = post(
            &officer,
            format!("/v1/dossiers/{id}/actions"),
            complete(file),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let p: Value = r.json().await.unwrap();
        assert_eq!(p["errors"][0]["problem"], "upload_unknown", "{p}");
    }
    let r = post(
        &officer,
        format!("/v1/dossiers/{id}/actions"),
        complete(&cert_id),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    // The applicant has it in their store and may download it; nobody else may.
    let (_, docs) = env.get(&env.citizen, "/v1/me/documents").await;
    let result = docs["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "ket-qua")
        .unwrap_or_else(|| panic!("a result in {docs}"))
        .clone();
    assert_eq!(result["dossier"], json!(id));
    assert_eq!(result["upload"], json!(cert_id));
    assert!(
        result["issuer"].as_str().is_some_and(|i| !i.is_empty()),
        "{result}"
    );
    let (status, _) = env
        .get(&env.citizen, &format!("/v1/uploads/{cert_id}/content"))
        .await;
    assert_eq!(status, StatusCode::OK);
    for token in [&env.other_citizen, &other_officer] {
        let (status, _) = env
            .get(token, &format!("/v1/uploads/{cert_id}/content"))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    // The result is reused by a later dossier (digitisation state 3); someone else's is not.
    let to_khai = env
        .runner
        .verified_pdf(&env.http, &env.citizen, "1.000894", "to-khai")
        .await;
    let reuse = |code: &str| {
        json!({"procedure_code": "1.000894",
        "form": {"husband_id": "001203004567", "wife_id": "037153000257", "contact_phone": "0912345678"},
        "documents": [{"code": "to-khai", "source": "upload", "reference": to_khai},
            {"code": "xac-nhan-hon-nhan", "source": "dossier", "reference": code}]})
    };
    let code = dossier["code"].as_str().unwrap();
    let r = post(&env.other_citizen, "/v1/dossiers".into(), reuse(code))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = post(&env.citizen, "/v1/dossiers".into(), reuse(code))
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    let created: Value = r.json().await.unwrap();
    let (_, d) = env
        .get(
            &env.citizen,
            &format!("/v1/dossiers/{}", created["id"].as_str().unwrap()),
        )
        .await;
    assert_eq!(d["documents"][1]["digitisation_state"], 3, "{d}");
}

/// Review findings: a file reused from the store could be read by the first citing
/// agency only (the reusing agency got 404); one file could fill two components of one
/// dossier; another spelling of an id named the same file.
async fn reused_files_are_readable_by_the_reusing_agency_and_fill_one_component(backend: Backend) {
    let env = Env::start("cite-reuse", backend, &[]);
    let stored = env
        .runner
        .verified_pdf(&env.http, &env.citizen, "1.000894", "xac-nhan-hon-nhan")
        .await;
    let to_khai = env
        .runner
        .verified_pdf(&env.http, &env.citizen, "1.000894", "to-khai")
        .await;
    let body = |upload: &str, store: &str| {
        json!({"procedure_code": "1.000894",
        "form": {"husband_id": "001203004567", "wife_id": "037153000257", "contact_phone": "0912345678"},
        "documents": [{"code": "to-khai", "source": "upload", "reference": upload},
            {"code": "xac-nhan-hon-nhan", "source": "store", "reference": store}]})
    };
    let post = |b: Value| {
        env.http
            .post(env.runner.url("/v1/dossiers"))
            .bearer_auth(&env.citizen)
            .json(&b)
            .send()
    };
    // Other spellings of the ids name nothing.
    for (upload, store) in [
        (to_khai.to_uppercase(), stored.clone()),
        (format!("urn:uuid:{to_khai}"), stored.clone()),
        (to_khai.clone(), stored.to_uppercase()),
    ] {
        let r = post(body(&upload, &store)).await.unwrap();
        assert_eq!(
            r.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{upload} {store}"
        );
    }
    // One file in two components.
    let r = post(body(&to_khai, &to_khai)).await.unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let p: Value = r.json().await.unwrap();
    assert_eq!(p["errors"][0]["problem"], "upload_cited", "{p}");
    // Reused in a dossier of agency 000.01.41.H42: its officers read the stored file.
    let r = post(body(&to_khai, &stored)).await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );
    let officer = env
        .runner
        .token("officer", "officer-tuan", Some(OTHER_AGENCY));
    let stranger = env.runner.token("officer", "officer-ha", Some(AGENCY));
    let (status, _) = env
        .get(&officer, &format!("/v1/uploads/{stored}/content"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = env
        .get(&stranger, &format!("/v1/uploads/{stored}/content"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Review findings: an officer kept access to their result files after moving to another
/// agency; a citizen whose owner reference spelled an officer's read the officer's file.
async fn officers_files_are_their_agencys_and_never_a_citizens(backend: Backend) {
    let env = Env::start("cite-officer", backend, &[]);
    let officer = env.runner.token("officer", "officer-ha", Some(AGENCY));
    let moved = env
        .runner
        .token("officer", "officer-ha", Some(OTHER_AGENCY));
    let slot = Env::slot_for(SAMPLE_PDF);
    let up = env
        .runner
        .upload(&env.http, &officer, slot, SAMPLE_PDF)
        .await;
    let id = up["id"].as_str().unwrap();
    let (status, _) = env.get(&officer, &format!("/v1/uploads/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    let lookalike = env.runner.token("citizen", "officer-ha", None);
    for token in [&moved, &lookalike] {
        for path in [
            format!("/v1/uploads/{id}"),
            format!("/v1/uploads/{id}/content"),
        ] {
            let (status, p) = env.get(token, &path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {p}");
        }
    }
    let mut cite = motcua_tests::criminal_record();
    cite["documents"][0]["reference"] = json!(id);
    let r = env
        .http
        .post(env.runner.url("/v1/dossiers"))
        .bearer_auth(&lookalike)
        .json(&cite)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let _ = sha256_b64(SAMPLE_PDF);
}

motcua_tests::on_both_backends!(
    reused_files_are_readable_by_the_reusing_agency_and_fill_one_component,
    officers_files_are_their_agencys_and_never_a_citizens,
    dossiers_cite_only_verified_files_of_their_own_not_cited_elsewhere,
    stored_documents_are_reused_with_their_digitisation_state,
    an_officers_result_file_reaches_the_applicant_and_is_reused,
);
