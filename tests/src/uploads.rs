//! What the upload tests share: a runner with two citizens, slots, PUTs as a browser
//! makes them, and reads.

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

use crate::{Backend, Runner, sha256_b64};

pub struct Env {
    pub runner: Runner,
    pub http: Client,
    pub citizen: String,
    pub other_citizen: String,
}

impl Env {
    pub fn start(label: &str, backend: Backend, extra: &[(&str, &str)]) -> Env {
        let runner = Runner::start_on_with(label, backend, extra).expect("runner starts");
        Env {
            citizen: runner.token("citizen", "citizen-lan", None),
            other_citizen: runner.token("citizen", "citizen-minh", None),
            http: Client::new(),
            runner,
        }
    }

    pub fn slot_for(bytes: &[u8]) -> Value {
        json!({"file_name": "Tờ khai.pdf", "content_type": "application/pdf",
            "size": bytes.len(), "sha256": sha256_b64(bytes)})
    }

    pub async fn open_slot(&self, token: &str, slot: &Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(self.runner.url("/v1/uploads"))
            .bearer_auth(token)
            .json(slot)
            .send()
            .await
            .unwrap();
        let status = r.status();
        if status.is_client_error() {
            assert_eq!(r.headers()["content-type"], "application/problem+json");
        }
        (status, r.json().await.unwrap())
    }

    /// Sends `body` to the slot's URL with its signed headers, `change` applied to them.
    pub async fn put(
        &self,
        slot: &Value,
        body: &[u8],
        change: impl Fn(&mut Vec<(String, String)>),
    ) -> (StatusCode, String) {
        let req = &slot["upload_request"];
        let mut headers: Vec<(String, String)> = req["headers"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        change(&mut headers);
        let mut put = self.http.put(req["url"].as_str().unwrap());
        for (k, v) in &headers {
            put = put.header(k, v);
        }
        let r = put.body(body.to_vec()).send().await.unwrap();
        (r.status(), r.text().await.unwrap())
    }

    pub async fn get(&self, token: &str, path: &str) -> (StatusCode, Value) {
        let r = self
            .http
            .get(self.runner.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

pub fn set(headers: &mut [(String, String)], name: &str, value: &str) {
    for (k, v) in headers.iter_mut() {
        if k.eq_ignore_ascii_case(name) {
            *v = value.to_owned();
        }
    }
}
