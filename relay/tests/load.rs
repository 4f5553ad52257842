//! Many sockets at once on loopback: bounded in count and time.

#[path = "common/client.rs"]
mod client;
mod common;
use client::*;
use common::{msg, open_per_addr, Relay};

use peercall_relay::Config;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_sockets_in_hundreds_of_rooms() {
    // Two thousand clients and their two thousand server ends in one
    // process: raise the open-file limit where the soft one is lower.
    rlimit::increase_nofile_limit(8192).unwrap();
    const ROOMS: usize = 250;
    const PER_ROOM: usize = 8;
    let relay = Relay::start(Config {
        max_peers_per_room: PER_ROOM,
        // All from 127.0.0.1: the per-address limits would stop them.
        per_addr: open_per_addr(),
        ..Config::default()
    })
    .await;
    let mut clients = Vec::with_capacity(ROOMS * PER_ROOM);
    for r in 0..ROOMS {
        for p in 0..PER_ROOM {
            let mut c = relay.client().await;
            send(
                &mut c,
                msg(
                    &format!("room{r}"),
                    &format!("p{p}"),
                    None,
                    json!({"type": "join"}),
                ),
            )
            .await;
            clients.push(c);
        }
    }
    // Each client's first message is its welcome: then all joins are done.
    for c in &mut clients {
        assert_eq!(next_json(c).await["type"], "welcome");
    }
    let h = relay.health().await;
    assert_eq!(
        (
            h["connections"].clone(),
            h["rooms"].clone(),
            h["peers"].clone()
        ),
        (json!(2000), json!(ROOMS), json!(2000))
    );
    // In every room the last to join speaks; the seven others hear it.
    for r in 0..ROOMS {
        let last = &mut clients[r * PER_ROOM + PER_ROOM - 1];
        send(
            last,
            msg(
                &format!("room{r}"),
                &format!("p{}", PER_ROOM - 1),
                None,
                json!({"type": "ping", "n": r}),
            ),
        )
        .await;
    }
    for r in 0..ROOMS {
        for p in 0..PER_ROOM - 1 {
            let c = &mut clients[r * PER_ROOM + p];
            // The joins of those after it, then the ping.
            let mut got = None;
            for _ in 0..PER_ROOM + 1 {
                let m = next_json(c).await;
                if m["type"] == "ping" {
                    got = Some(m);
                    break;
                }
            }
            let m = got.unwrap_or_else(|| panic!("room{r} p{p} heard no ping"));
            assert_eq!(
                (m["n"].clone(), m["room"].clone()),
                (json!(r), json!(format!("room{r}")))
            );
        }
    }
}
