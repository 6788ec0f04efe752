//! The same server on a real PostgreSQL (`scripts/test.sh` installs and starts one on
//! loopback and sets `LORE_TEST_POSTGRES_URL`), including the database going away mid-life.
#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use lore_server::Role;
use serde_json::json;

fn postgres_url() -> String {
    std::env::var("LORE_TEST_POSTGRES_URL")
        .expect("LORE_TEST_POSTGRES_URL names a PostgreSQL database; scripts/test.sh starts one")
}

#[test]
fn sessions_persist_in_postgres_across_restarts() {
    let canon = canon();
    let backend = embedded();
    let server = start(&canon, Options::new(postgres_url(), backend.clone()));
    let key = server.key("brindlemoor", Role::Player);
    let id = open_session(&server, &key, "pg");
    let turns = format!("{}/v1/sessions/{id}/turns", server.url);
    let r = post(
        &turns,
        Some(&key),
        &json!({ "input": "I am Tom. The boat is moored at Crane's wharf." }),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // Quest changes record in PostgreSQL too: the log, its facts and its numbered events.
    let quests = format!("{}/v1/sessions/{id}/quests", server.url);
    let offered = post(&quests, Some(&key), &json!({}));
    assert_eq!(offered.status, 201, "{}", offered.body);
    let moved = post(
        &format!("{}/v1/sessions/{id}/events", server.url),
        Some(&key),
        &json!({"action": "goto", "targets": ["Lantern Quay"]}),
    );
    assert_eq!(moved.status, 200, "{}", moved.body);
    assert_eq!(moved.json()["events"][0]["seq"], 1);
    // The review queue and the audit log in PostgreSQL: propose, list, decide once.
    let writer = server.key("brindlemoor", Role::Writer);
    let proposed = post(
        &format!("{}/v1/sessions/{id}/proposals", server.url),
        Some(&key),
        &json!({"fact": format!("urn:lore:session:{id}#m0")}),
    );
    assert_eq!(proposed.status, 201, "{}", proposed.body);
    let proposal = proposed.json()["id"].as_str().unwrap().to_owned();
    let pending = get(
        &format!("{}/v1/proposals?status=pending", server.url),
        Some(&writer),
    );
    assert_eq!(
        pending.json()[0]["id"],
        proposal.as_str(),
        "{}",
        pending.body
    );
    let reject = format!("{}/v1/proposals/{proposal}/reject", server.url);
    let rejected = post(&reject, Some(&writer), &json!({"reason": "not canon"}));
    assert_eq!(rejected.status, 200, "{}", rejected.body);
    assert_eq!(
        post(&reject, Some(&writer), &json!({"reason": "again"})).status,
        409
    );
    let audit = get(&format!("{}/v1/audit", server.url), Some(&writer)).json();
    assert_eq!(audit[0]["action"], "proposal_rejected");
    server.stop();
    let server = start(&canon, Options::new(postgres_url(), backend));
    let listed = get(
        &format!("{}/v1/sessions/{id}/quests", server.url),
        Some(&key),
    );
    assert_eq!(listed.json()["quests"][0]["status"], "offered");
    assert_eq!(listed.json()["events"], 1);
    let turns = format!("{}/v1/sessions/{id}/turns", server.url);
    let r = post(&turns, Some(&key), &json!({ "input": "Still there?" }));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["turn"], 1);
    let detail = get(&format!("{}/v1/sessions/{id}", server.url), Some(&key)).json();
    assert_eq!(detail["transcript"].as_array().unwrap().len(), 2);
    assert!(
        detail["memory"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["kind"] == "name")
    );
    server.stop();
}

/// A TCP relay to PostgreSQL that can cut every connection and refuse new ones.
struct Relay {
    port: u16,
    down: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Relay {
    fn start(upstream: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let (d, o) = (down.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if d.load(Ordering::SeqCst) {
                    continue;
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                o.lock()
                    .unwrap()
                    .extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Relay { port, down, open }
    }

    fn cut(&self) {
        self.down.store(true, Ordering::SeqCst);
        for socket in self.open.lock().unwrap().drain(..) {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

#[test]
fn a_database_that_goes_down_gives_503_and_loses_nothing() {
    let url = postgres_url();
    // postgres://user@host:port/db -> relay host:port.
    let rest = url.split_once("://").unwrap().1;
    let (auth, after) = rest.split_once('@').unwrap();
    let (host_port, db) = after.split_once('/').unwrap();
    let relay = Relay::start(host_port.to_owned());
    let relayed = format!("postgres://{auth}@127.0.0.1:{}/{db}", relay.port);
    let canon = canon();
    let server = start(&canon, Options::new(relayed, embedded()));
    let key = server.key("brindlemoor", Role::Player);
    let id = open_session(&server, &key, "outage");
    let turns = format!("{}/v1/sessions/{id}/turns", server.url);
    assert_eq!(
        post(&turns, Some(&key), &json!({ "input": "Hello." })).status,
        200
    );

    relay.cut();
    let r = get(&format!("{}/v1/sessions/{id}", server.url), Some(&key));
    assert_eq!(
        (r.status, r.code().as_str()),
        (503, "database_unavailable"),
        "{}",
        r.body
    );
    assert!(r.header("retry-after").is_some());
    let r = post(&turns, Some(&key), &json!({ "input": "Are you there?" }));
    assert_eq!(
        r.status, 503,
        "a turn that cannot be recorded is refused: {}",
        r.body
    );
    assert_eq!(get(&format!("{}/readyz", server.url), None).status, 503);

    relay.restore();
    std::thread::sleep(Duration::from_millis(200));
    let detail = get(&format!("{}/v1/sessions/{id}", server.url), Some(&key));
    assert_eq!(detail.status, 200, "{}", detail.body);
    assert_eq!(
        detail.json()["session"]["turns"],
        1,
        "the first turn is there, the failed one is not"
    );
    let r = post(&turns, Some(&key), &json!({ "input": "Back again." }));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["turn"], 1);
    server.stop();
}
