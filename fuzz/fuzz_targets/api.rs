//! The HTTP API's request parsing, in process: as-server's real routes
//! (`as_server::routes::configure`) over a real `AppState` (`as_server::app::open` on a
//! data folder in /dev/shm), driven with actix-web's test harness: the request types
//! (`kt_protocol::api`) and the operations behind them are reached through their handlers,
//! with fuzzed JSON bodies, path segments, queries and Authorization headers.
//!
//! At start the harness enrolls two identities and issues alice a credential (a real signed
//! proof of possession), so lookups, histories (`GET /v1/identities/{identity}/history?after=N`),
//! proofs, entries, tiles, revocations and rotations have something to find. The first input
//! byte picks the request (`mode % 13`); the rest (split at the first NUL for a path segment
//! or header, then a body or query) fills it in.
//!
//! Properties: nothing panics (handlers, sequencer thread), and no request gets a 500: client
//! mistakes are 4xx (as-server's problem.rs), 500 is for server-side failures only.
#![no_main]

use std::cell::RefCell;

use actix_web::rt::{System, SystemRunner};
use actix_web::{test, web, App};
use as_server::app::AppState;
use as_server::config::ServeArgs;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::{Signer as _, SigningKey};
use kt_fuzz::{split_mode, split_nul};
use libfuzzer_sys::fuzz_target;

struct Harness {
    runner: SystemRunner,
    app: web::Data<AppState>,
    admin: String,
}

thread_local! {
    static HARNESS: RefCell<Option<Harness>> = const { RefCell::new(None) };
}

/// Percent-encodes every byte but unreserved ones and those in `keep`.
fn encode(bytes: &[u8], keep: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 3);
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

struct Req {
    method_post: bool,
    uri: String,
    auth: Option<Vec<u8>>,
    body: Vec<u8>,
}

fn call(h: &Harness, req: Req) -> (u16, Vec<u8>) {
    h.runner.block_on(async {
        let service = test::init_service(
            App::new()
                .app_data(h.app.clone())
                .configure(as_server::routes::configure),
        )
        .await;
        let mut tr = if req.method_post {
            test::TestRequest::post()
        } else {
            test::TestRequest::get()
        };
        tr = tr.uri(&req.uri);
        if let Some(auth) = req.auth {
            match actix_web::http::header::HeaderValue::from_bytes(&auth) {
                Ok(v) => tr = tr.insert_header((actix_web::http::header::AUTHORIZATION, v)),
                Err(_) => return (0, Vec::new()),
            }
        }
        let tr = tr.set_payload(req.body);
        let response = test::call_service(&service, tr.to_request()).await;
        let status = response.status().as_u16();
        let body = test::read_body(response).await;
        (status, body.to_vec())
    })
}

fn admin_bearer(h: &Harness) -> Option<Vec<u8>> {
    Some(format!("Bearer {}", h.admin).into_bytes())
}

fn setup() -> Harness {
    let root = std::path::Path::new("/dev/shm")
        .is_dir()
        .then(|| std::path::PathBuf::from("/dev/shm"))
        .unwrap_or_else(std::env::temp_dir);
    let data = root.join(format!("kt-fuzz-api-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let args = ServeArgs {
        data: Some(data),
        origin: Some("fuzz.example/as".into()),
        rotation_min_interval: Some(0),
        ..ServeArgs::default()
    };
    let config = args.resolve().expect("config resolves");
    let material = as_server::setup::load_or_create(&config).expect("material");
    let admin = material.new_admin_token.clone().expect("a new admin token");
    let runner = System::new();
    let app = runner.block_on(async { as_server::app::open(&config, material) });
    let app = web::Data::new(app.expect("server opens"));
    let h = Harness { runner, app, admin };
    // Enroll two identities; issue alice a credential with a real proof of possession.
    let body = br#"{"identities":["alice@example.com","bob@example.com"]}"#.to_vec();
    let (status, answer) = call(
        &h,
        Req {
            method_post: true,
            uri: "/v1/admin/enrollments".into(),
            auth: admin_bearer(&h),
            body,
        },
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&answer));
    let answer: serde_json::Value = serde_json::from_slice(&answer).expect("json");
    let token = answer["enrollments"][0]["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let key = SigningKey::from_bytes(&[3u8; 32]);
    let public_key = B64.encode(key.verifying_key().as_bytes());
    let message = kt_protocol::pop::issuance_message(
        "alice@example.com",
        &public_key,
        &kt_protocol::pop::enrollment_id(&token),
    );
    let signature = B64.encode(key.sign(message.as_bytes()).to_bytes());
    let body = serde_json::json!({
        "identity": "alice@example.com", "token": token,
        "public_key": public_key, "signature": signature,
    })
    .to_string()
    .into_bytes();
    let (status, answer) = call(
        &h,
        Req {
            method_post: true,
            uri: "/v1/credentials".into(),
            auth: None,
            body,
        },
    );
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&answer));
    h
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = split_mode(data) else {
        return;
    };
    HARNESS.with(|cell| {
        let mut slot = cell.borrow_mut();
        let h = slot.get_or_insert_with(setup);
        let (seg, body) = split_nul(rest);
        let post = |uri: String, auth: Option<Vec<u8>>, body: &[u8]| Req {
            method_post: true,
            uri,
            auth,
            body: body.to_vec(),
        };
        let get = |uri: String| Req {
            method_post: false,
            uri,
            auth: None,
            body: Vec::new(),
        };
        let req = match mode % 13 {
            0 => post("/v1/credentials".into(), None, rest),
            1 => post("/v1/credentials/rotate".into(), None, rest),
            2 => post("/v1/admin/enrollments".into(), admin_bearer(h), rest),
            3 => post(
                format!("/v1/admin/identities/{}/revoke", encode(seg, b"")),
                admin_bearer(h),
                body,
            ),
            4 => post(
                format!("/v1/admin/identities/{}/enable", encode(seg, b"")),
                admin_bearer(h),
                body,
            ),
            5 => post(
                format!("/v1/admin/credentials/{}/revoke", encode(seg, b"")),
                admin_bearer(h),
                body,
            ),
            6 => post("/v1/admin/enrollments".into(), Some(seg.to_vec()), body),
            7 => get(format!("/v1/identities/{}", encode(rest, b""))),
            8 => get(format!("/v1/log/proof/inclusion?{}", encode(rest, b"=&"))),
            9 => get(format!("/v1/log/proof/consistency?{}", encode(rest, b"=&"))),
            10 => get(format!("/v1/log/entries/{}", encode(rest, b""))),
            11 => get(format!("/log/tile/{}", encode(rest, b"/"))),
            _ => get(format!(
                "/v1/identities/{}/history?{}",
                encode(seg, b""),
                encode(body, b"=&")
            )),
        };
        let uri = req.uri.clone();
        let (status, answer) = call(h, req);
        assert!(
            !(500..=599).contains(&status) || status == 503,
            "{uri} answered {status}: {}",
            String::from_utf8_lossy(&answer)
        );
    });
});
