//! Large calls (PROTOCOL.md 5.14): a room's media through the VideoRoom
//! plugin of Janus, an SFU.
//!
//! One room on the SFU is one task ([`SfuRoom`]) with its own Janus
//! session and VideoRoom room. Each person in it is two plugin handles: a
//! publisher (their `sfu_publish` offer, joined with `joinandconfigure`)
//! and a subscriber (one multistream subscription to everyone else's
//! feeds, grown with `subscribe` as people publish; Janus drops the
//! streams of those who leave by itself and offers the smaller
//! subscription). What Janus says becomes `sfu_published` and
//! `sfu_subscription` messages; Janus's numeric feed ids become peer ids.
//! The Janus room goes when its last person does; the task goes with the
//! peercall room ([`SfuRoom`] dropped).
//!
//! In a cluster (`--redis`) every relay with people in the room has its
//! own task and Janus session, all in one VideoRoom room: where it lives
//! (which Janus, which room id) is agreed in Redis ([`Cluster::place`]),
//! feed ids are random and a feed's display name is its peer id, so each
//! task learns the other relays' feeds from Janus's `publishers` events
//! and subscribes its people to them. A task that finds the placement
//! moved (another relay saw the Janus fail) moves its people there.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peercall_protocol::{codes, Body, SfuStream};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::cluster::Cluster;
use crate::janus::{JanusError, Session};
use crate::outbox::Outbox;
use crate::phone::PhoneConfig;
use crate::rooms::said_to;

/// The VideoRoom plugin's name in Janus.
const VIDEOROOM: &str = "janus.plugin.videoroom";
/// How long connecting to one Janus may take.
const CONNECT_LIMIT: Duration = Duration::from_secs(5);
/// Each publisher's video cap (REMB from Janus), bits per second.
const PUBLISHER_BITRATE: u64 = 1_500_000;
/// How long a Janus that failed is passed over for new rooms.
const DOWN_FOR: Duration = Duration::from_secs(30);
/// How often a task in a cluster checks that the room's SFU is still
/// where it is connected.
const PLACEMENT_CHECK: Duration = Duration::from_secs(2);
/// The order of a publisher's simulcast `rid`s in its offer (PROTOCOL.md
/// 5.14: `q`, `h`, `f`): lowest first. Janus assumes highest first
/// unless told.
const RID_ORDER: &str = "lmh";
/// VideoRoom's error codes for a room that is not there, or already is.
const NO_SUCH_ROOM: i64 = 426;
const ROOM_EXISTS: i64 = 427;

/// The Janus servers (`--janus`, each given once or comma-separated) and
/// how many of this relay's rooms each carries: a room goes to the least
/// loaded one that is up; one that failed is passed over for a while.
#[derive(Debug)]
pub(crate) struct JanusPool {
    servers: Vec<Server>,
    secret: Option<String>,
}

#[derive(Debug)]
struct Server {
    url: String,
    rooms: AtomicUsize,
    down_until: Mutex<Option<Instant>>,
}

impl JanusPool {
    pub(crate) fn new(config: &PhoneConfig) -> Self {
        Self {
            servers: config
                .janus
                .iter()
                .map(|url| Server {
                    url: url.clone(),
                    rooms: AtomicUsize::new(0),
                    down_until: Mutex::new(None),
                })
                .collect(),
            secret: config.janus_secret.clone(),
        }
    }

    /// The servers to try for a new room, best first: those up by load,
    /// then those that failed lately.
    fn order(&self) -> Vec<usize> {
        let now = Instant::now();
        let mut order: Vec<(bool, usize, usize)> = self
            .servers
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let down = crate::lock(&s.down_until).is_some_and(|until| until > now);
                (down, s.rooms.load(Ordering::Relaxed), i)
            })
            .collect();
        order.sort();
        order.into_iter().map(|(_, _, i)| i).collect()
    }

    fn down(&self, i: usize) {
        *crate::lock(&self.servers[i].down_until) = Some(Instant::now() + DOWN_FOR);
    }

    fn took(&self, i: usize) {
        self.servers[i].rooms.fetch_add(1, Ordering::Relaxed);
    }

    fn gave_back(&self, i: usize) {
        let _ = self.servers[i]
            .rooms
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// The server with this URL.
    fn index(&self, url: &str) -> Option<usize> {
        self.servers.iter().position(|s| s.url == url)
    }

    /// Rooms per Janus, for `/healthz`.
    pub(crate) fn load(&self) -> Vec<(String, usize)> {
        self.servers
            .iter()
            .map(|s| (s.url.clone(), s.rooms.load(Ordering::Relaxed)))
            .collect()
    }
}

/// What the room registry asks of a room's SFU task.
#[derive(Debug)]
pub(crate) enum Command {
    /// `peer` publishes with `sdp` (again: its old handles go first; or,
    /// `ice_restart`, renegotiating the publisher it has).
    Publish {
        peer: String,
        outbox: Outbox,
        sdp: String,
        ice_restart: bool,
    },
    /// `peer`'s receiving connection restarts ICE: Janus offers anew.
    Restart { peer: String },
    /// `peer`'s answer to its latest subscription offer.
    Answer { peer: String, sdp: String },
    /// `peer` wants simulcast layer `layer` of `of`'s video (`None`: none).
    Layer {
        peer: String,
        of: String,
        layer: Option<u8>,
    },
    /// `peer` is off the SFU (`sfu_leave`, or out of the room).
    Leave { peer: String },
}

/// A room's SFU task; dropping it ends the task (and its Janus room).
#[derive(Debug)]
pub(crate) struct SfuRoom {
    tx: mpsc::UnboundedSender<Command>,
}

impl SfuRoom {
    /// Starts the task for peercall room `room`, on one of the Janus
    /// servers of `janus` (the one the `cluster` agrees on, in one), for
    /// up to `max_publishers` people.
    pub(crate) fn start(
        janus: Arc<JanusPool>,
        cluster: Option<Arc<Cluster>>,
        room: String,
        max_publishers: usize,
    ) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(
            Task {
                janus,
                cluster,
                room,
                max_publishers,
                session: None,
                server: None,
                control: 0,
                janus_room: None,
                placement: None,
                failed: None,
                parts: BTreeMap::new(),
                remote: BTreeMap::new(),
            },
            rx,
        ));
        Self { tx }
    }

    pub(crate) fn send(&self, command: Command) {
        let _ = self.tx.send(command);
    }
}

/// One person on the SFU.
#[derive(Debug)]
struct Part {
    outbox: Outbox,
    /// Their publisher handle and feed id.
    publisher: u64,
    feed: u64,
    /// Janus has their media connection up (`webrtcup`).
    live: bool,
    /// Their subscriber handle, once made.
    subscriber: Option<u64>,
    /// The subscriber handle's `join` was answered (`attached`): it takes
    /// `subscribe` requests now.
    attached: bool,
    /// Feeds asked for on the subscriber handle.
    requested: BTreeSet<u64>,
    /// Feeds to ask for once it is attached.
    pending: BTreeSet<u64>,
    /// The subscription's video m-lines now: (mid, feed).
    videos: Vec<(String, u64)>,
    /// The simulcast layer wanted per feed (`None`: no video), once asked.
    layers: BTreeMap<u64, Option<u8>>,
    /// Whose media the subscription's m-lines carry, as last told.
    streams: Vec<SfuStream>,
}

struct Task {
    janus: Arc<JanusPool>,
    cluster: Option<Arc<Cluster>>,
    room: String,
    max_publishers: usize,
    session: Option<Session>,
    /// Which of the pool's servers the session is on.
    server: Option<usize>,
    /// The handle synchronous requests (`create`, `destroy`) go on.
    control: u64,
    janus_room: Option<u64>,
    /// In a cluster: the placement this task is on (`url \t room id`).
    placement: Option<String>,
    /// A placement whose Janus failed, for the next one to replace.
    failed: Option<String>,
    parts: BTreeMap<String, Part>,
    /// Feeds published through other relays (a cluster): feed -> peer.
    remote: BTreeMap<u64, String>,
}

async fn run(mut t: Task, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut check = tokio::time::interval(PLACEMENT_CHECK);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(command) => t.command(command).await,
                None => break,
            },
            event = next_event(&mut t.session) => match event {
                Some(event) => t.event(event).await,
                None => t.janus_lost("the connection to Janus closed").await,
            },
            _ = check.tick(), if t.placement.is_some() => t.check_placement().await,
        }
    }
    t.close().await;
}

/// The next event of `session`, or never without one.
async fn next_event(session: &mut Option<Session>) -> Option<Value> {
    match session {
        Some(s) => s.next_event().await,
        None => std::future::pending().await,
    }
}

/// A random VideoRoom room id (below 2^53, so JSON numbers hold it).
fn room_id() -> u64 {
    (crate::random_u64() >> 11).max(1)
}

/// The streams of a subscription, as peers: Janus's `streams` list with
/// its feed ids turned into peer ids (streams of feeds we do not know,
/// inactive ones and data channels left out).
pub(crate) fn streams(list: &Value, peer_of: impl Fn(u64) -> Option<String>) -> Vec<SfuStream> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["active"].as_bool() != Some(false))
        .filter_map(|s| {
            let kind = s["type"].as_str()?;
            if kind != "audio" && kind != "video" {
                return None;
            }
            Some(SfuStream {
                mid: s["mid"].as_str()?.to_owned(),
                peer: peer_of(s["feed_id"].as_u64()?)?,
                kind: kind.to_owned(),
            })
        })
        .collect()
}

impl Task {
    fn tell(&self, outbox: &Outbox, peer: &str, body: Body) {
        outbox.deliver(said_to(&self.room, peer, body));
    }

    fn fail(&self, outbox: &Outbox, peer: &str, message: String) {
        tracing::warn!(room = self.room, peer, message, "SFU request failed");
        self.tell(
            outbox,
            peer,
            Body::Error {
                code: codes::SFU_FAILED.into(),
                message,
            },
        );
    }

    fn peer_of_feed(&self, feed: u64) -> Option<String> {
        self.parts
            .iter()
            .find(|(_, p)| p.feed == feed)
            .map(|(id, _)| id.clone())
            .or_else(|| self.remote.get(&feed).cloned())
    }

    /// The feed `peer` publishes (here or through another relay).
    fn feed_of(&self, peer: &str) -> Option<u64> {
        self.parts.get(peer).map(|p| p.feed).or_else(|| {
            self.remote
                .iter()
                .rev()
                .find(|(_, p)| *p == peer)
                .map(|(f, _)| *f)
        })
    }

    /// Connects to the first of `servers` that answers.
    async fn connect(&mut self, servers: Vec<usize>) -> Result<(), JanusError> {
        let mut last = JanusError::Connection("no Janus is configured".into());
        for i in servers {
            let url = &self.janus.servers[i].url;
            let opened = async {
                let session =
                    Session::open(url, self.janus.secret.as_deref(), CONNECT_LIMIT).await?;
                let control = session.attach(VIDEOROOM).await?;
                Ok::<_, JanusError>((session, control))
            };
            match opened.await {
                Ok((session, control)) => {
                    self.session = Some(session);
                    self.control = control;
                    self.server = Some(i);
                    self.janus.took(i);
                    tracing::info!(room = self.room, janus = %url, "the room's SFU");
                    return Ok(());
                }
                Err(e) => {
                    tracing::warn!(room = self.room, janus = %url, error = %e, "Janus unreachable");
                    self.janus.down(i);
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// Lets go of the session (its handles go with it), not of the room.
    async fn disconnect(&mut self) {
        if let Some(session) = self.session.take() {
            session.destroy().await;
        }
        self.janus_room = None;
        self.placement = None;
        if let Some(i) = self.server.take() {
            self.janus.gave_back(i);
        }
    }

    /// Connects to a Janus (the least loaded that answers; in a cluster,
    /// the one the room is placed on) and makes the VideoRoom room, unless
    /// that is done.
    async fn ensure_room(&mut self) -> Result<(), JanusError> {
        if self.session.is_none() {
            self.connect(self.janus.order()).await?;
        }
        if self.janus_room.is_some() {
            return Ok(());
        }
        let mut id = room_id();
        if let (Some(cluster), Some(i)) = (self.cluster.clone(), self.server) {
            let proposal = format!("{}\t{id}", self.janus.servers[i].url);
            let failed = self.failed.take();
            // Redis away: the room is placed here alone, and checked again.
            let placed = cluster
                .place(&self.room, &proposal, failed.as_deref())
                .await
                .unwrap_or(proposal);
            let (url, placed_id) = placed
                .split_once('\t')
                .and_then(|(url, n)| Some((url, n.parse::<u64>().ok()?)))
                .ok_or_else(|| JanusError::Malformed(format!("SFU placement {placed:?}")))?;
            if url != self.janus.servers[i].url {
                let j = self.janus.index(url).ok_or_else(|| {
                    JanusError::Connection(format!(
                        "the room is on {url}, which this relay was not given (--janus)"
                    ))
                })?;
                self.disconnect().await;
                if let Err(e) = self.connect(vec![j]).await {
                    // The next publish may move the room elsewhere.
                    self.failed = Some(placed);
                    return Err(e);
                }
            }
            id = placed_id;
            self.placement = Some(placed);
        }
        let Some(session) = &self.session else {
            return Err(JanusError::Closed);
        };
        let created = session
            .call(
                self.control,
                json!({"request": "create", "room": id, "permanent": false,
                    "is_private": true, "description": format!("peercall {}", self.room),
                    "publishers": self.max_publishers, "bitrate": PUBLISHER_BITRATE,
                    "audiocodec": "opus", "videocodec": "vp8",
                    "notify_joining": false}),
            )
            .await;
        match created {
            Ok(_) => tracing::info!(room = self.room, janus_room = id, "SFU room created"),
            // Another relay of the cluster made it.
            Err(JanusError::Refused { code, .. }) if code == ROOM_EXISTS => {}
            Err(e) => return Err(e),
        }
        self.janus_room = Some(id);
        Ok(())
    }

    /// In a cluster: whether the room's SFU is still where this task is.
    /// If another relay moved it (its Janus failed there), everyone here
    /// follows: told, they publish again, to the new place.
    async fn check_placement(&mut self) {
        let (Some(cluster), Some(placement)) = (self.cluster.clone(), self.placement.clone())
        else {
            return;
        };
        // A placement gone (Redis lost it) is said again.
        match cluster.place(&self.room, &placement, None).await {
            Some(now) if now != placement => {
                tracing::info!(
                    room = self.room,
                    from = placement,
                    to = now,
                    "the room's SFU moved"
                );
                let parts = std::mem::take(&mut self.parts);
                if let Some(session) = &self.session {
                    for part in parts.values() {
                        for handle in [Some(part.publisher), part.subscriber]
                            .into_iter()
                            .flatten()
                        {
                            let _ = session.detach(handle).await;
                        }
                    }
                }
                // The old room goes too, if nobody is left in it.
                self.close().await;
                for (peer, part) in &parts {
                    self.fail(
                        &part.outbox,
                        peer,
                        "the room's SFU moved to another server".into(),
                    );
                }
            }
            _ => {}
        }
    }

    async fn command(&mut self, command: Command) {
        match command {
            Command::Publish {
                peer,
                outbox,
                sdp,
                ice_restart: true,
            } if self.session.is_some() && self.parts.contains_key(&peer) => {
                let (Some(session), Some(part)) = (&self.session, self.parts.get(&peer)) else {
                    return;
                };
                let offer = json!({"type": "offer", "sdp": sdp, "rid_order": RID_ORDER});
                if let Err(e) = session
                    .message(part.publisher, json!({"request": "configure"}), Some(offer))
                    .await
                {
                    self.fail(
                        &outbox,
                        &peer,
                        format!("cannot restart ICE with the SFU: {e}"),
                    );
                }
            }
            Command::Restart { peer } => {
                let restart = json!({"request": "configure", "restart": true});
                self.configure_subscriber(&peer, restart, "cannot restart ICE with the SFU")
                    .await;
            }
            Command::Publish {
                peer, outbox, sdp, ..
            } => {
                if let Err(e) = self.publish(&peer, outbox.clone(), sdp).await {
                    self.fail(
                        &outbox,
                        &peer,
                        format!("cannot publish through the SFU: {e}"),
                    );
                }
            }
            Command::Answer { peer, sdp } => {
                let (Some(session), Some(part)) = (&self.session, self.parts.get(&peer)) else {
                    return;
                };
                let Some(handle) = part.subscriber else {
                    return;
                };
                let outbox = part.outbox.clone();
                let answer = json!({"type": "answer", "sdp": sdp});
                if let Err(e) = session
                    .message(handle, json!({"request": "start"}), Some(answer))
                    .await
                {
                    return self.fail(&outbox, &peer, format!("the SFU refused the answer: {e}"));
                }
                // A renegotiation may have reset the layers (Janus sends the
                // largest of a stream it set up again): ask once more.
                self.configure_layers(&peer, None).await;
            }
            Command::Leave { peer } => self.leave(&peer).await,
            Command::Layer { peer, of, layer } => {
                let Some(feed) = self.feed_of(&of) else {
                    return;
                };
                if let Some(part) = self.parts.get_mut(&peer) {
                    part.layers.insert(feed, layer);
                }
                self.configure_layers(&peer, Some(feed)).await;
            }
        }
    }

    /// Tells Janus the layers `peer` wants (of `only` that feed, or all).
    async fn configure_layers(&mut self, peer: &str, only: Option<u64>) {
        let Some(part) = self.parts.get(peer) else {
            return;
        };
        let streams: Vec<Value> = part
            .videos
            .iter()
            .filter(|(_, feed)| only.is_none_or(|f| f == *feed))
            .filter_map(|(mid, feed)| match part.layers.get(feed)? {
                Some(layer) => Some(json!({"mid": mid, "send": true, "substream": layer})),
                None => Some(json!({"mid": mid, "send": false})),
            })
            .collect();
        if streams.is_empty() {
            return;
        }
        let configure = json!({"request": "configure", "streams": streams});
        self.configure_subscriber(peer, configure, "cannot pick a layer")
            .await;
    }

    /// Sends `body` (a `configure`) on `peer`'s working subscription;
    /// if it cannot go, `peer` hears so, beginning with `what`.
    async fn configure_subscriber(&mut self, peer: &str, body: Value, what: &str) {
        let (Some(session), Some(part)) = (&self.session, self.parts.get(peer)) else {
            return;
        };
        let Some(handle) = part.subscriber.filter(|_| part.attached) else {
            return;
        };
        let outbox = part.outbox.clone();
        if let Err(e) = session.message(handle, body, None).await {
            self.fail(&outbox, peer, format!("{what}: {e}"));
        }
    }

    async fn publish(&mut self, peer: &str, outbox: Outbox, sdp: String) -> Result<(), JanusError> {
        self.leave(peer).await;
        self.ensure_room().await?;
        let (Some(session), Some(room)) = (&self.session, self.janus_room) else {
            return Err(JanusError::Closed);
        };
        let handle = session.attach(VIDEOROOM).await?;
        // Random: feeds of other relays' people share the room.
        let feed = room_id();
        self.parts.insert(
            peer.to_owned(),
            Part {
                outbox,
                publisher: handle,
                feed,
                live: false,
                subscriber: None,
                attached: false,
                requested: BTreeSet::new(),
                pending: BTreeSet::new(),
                videos: Vec::new(),
                layers: BTreeMap::new(),
                streams: Vec::new(),
            },
        );
        session
            .message(
                handle,
                json!({"request": "joinandconfigure", "room": room, "ptype": "publisher",
                    "id": feed, "display": peer, "audio": true, "video": true}),
                Some(json!({"type": "offer", "sdp": sdp, "rid_order": RID_ORDER})),
            )
            .await?;
        tracing::info!(room = self.room, peer, feed, "publishing through the SFU");
        Ok(())
    }

    /// Takes `peer` off the SFU (its handles detached: Janus tells the
    /// others' subscriptions); the Janus room goes with the last one.
    async fn leave(&mut self, peer: &str) {
        let Some(part) = self.parts.remove(peer) else {
            return;
        };
        for p in self.parts.values_mut() {
            p.requested.remove(&part.feed);
            p.pending.remove(&part.feed);
        }
        let Some(session) = &self.session else {
            return;
        };
        for handle in [Some(part.publisher), part.subscriber]
            .into_iter()
            .flatten()
        {
            let _ = session.detach(handle).await;
        }
        tracing::info!(room = self.room, peer, "off the SFU");
        if self.parts.is_empty() {
            self.close().await;
        }
    }

    /// Destroys the Janus room (unless people of other relays are still
    /// in it) and session.
    async fn close(&mut self) {
        if let (Some(session), Some(room)) = (&self.session, self.janus_room) {
            let in_use = self.cluster.is_some()
                && session
                    .call(
                        self.control,
                        json!({"request": "listparticipants", "room": room}),
                    )
                    .await
                    .is_ok_and(|data| {
                        data["participants"]
                            .as_array()
                            .is_some_and(|p| !p.is_empty())
                    });
            if !in_use {
                let _ = session
                    .call(self.control, json!({"request": "destroy", "room": room}))
                    .await;
                tracing::info!(room = self.room, janus_room = room, "SFU room closed");
            }
        }
        self.remote.clear();
        self.disconnect().await;
    }

    /// Janus went away: everyone on it is told, and starts again on the
    /// next `sfu_publish`.
    async fn janus_lost(&mut self, why: &str) {
        tracing::warn!(room = self.room, why, "lost the SFU");
        self.session = None;
        self.janus_room = None;
        self.remote.clear();
        // The next placement replaces this one (unless another relay
        // did already).
        self.failed = self.placement.take();
        if let Some(i) = self.server.take() {
            // Passed over for a while: the room starts again elsewhere.
            self.janus.down(i);
            self.janus.gave_back(i);
        }
        let parts = std::mem::take(&mut self.parts);
        for (peer, part) in &parts {
            self.fail(&part.outbox, peer, format!("the SFU went away: {why}"));
        }
    }

    /// Whose handle `handle` is, and whether it is their subscriber.
    fn owner(&self, handle: u64) -> Option<(String, bool)> {
        self.parts.iter().find_map(|(id, p)| {
            if p.publisher == handle {
                Some((id.clone(), false))
            } else if p.subscriber == Some(handle) {
                Some((id.clone(), true))
            } else {
                None
            }
        })
    }

    async fn event(&mut self, event: Value) {
        let Some((peer, subscriber)) = event["sender"].as_u64().and_then(|h| self.owner(h)) else {
            return;
        };
        let Some(outbox) = self.parts.get(&peer).map(|p| p.outbox.clone()) else {
            return;
        };
        let data = &event["plugindata"]["data"];
        let sdp = event["jsep"]["sdp"].as_str().map(str::to_owned);
        if !subscriber {
            self.feeds_changed(data).await;
        }
        match event["janus"].as_str() {
            Some("webrtcup") if !subscriber => self.went_live(&peer).await,
            Some("hangup") => {
                tracing::info!(room = self.room, peer, subscriber, reason = %event["reason"],
                    "an SFU media connection closed");
                if !subscriber {
                    if let Some(p) = self.parts.get_mut(&peer) {
                        p.live = false;
                    }
                }
            }
            Some("event") => {
                if let Some(code) = data["error_code"].as_i64() {
                    let error = data["error"].as_str().unwrap_or("unknown error");
                    if code == NO_SUCH_ROOM {
                        // Gone under us (its last other user closed it as
                        // we joined): made again on the next try.
                        self.janus_room = None;
                    }
                    let attached = self.parts.get(&peer).is_some_and(|p| p.attached);
                    if subscriber && attached {
                        // A layer or an extra feed refused on a working
                        // subscription: the media goes on, so does the call.
                        tracing::warn!(room = self.room, peer, code, error, "SFU request refused");
                        return;
                    }
                    return self.fail(&outbox, &peer, format!("the SFU refused ({code}): {error}"));
                }
                match (data["videoroom"].as_str(), sdp) {
                    // Its publish, or an ICE restart of it (`configured`).
                    (Some("joined" | "event"), Some(sdp)) if !subscriber => {
                        self.tell(&outbox, &peer, Body::SfuPublished { sdp });
                    }
                    // An ICE restart of the subscription: same streams.
                    (Some("event"), Some(sdp)) if subscriber => {
                        let streams = self
                            .parts
                            .get(&peer)
                            .map(|p| p.streams.clone())
                            .unwrap_or_default();
                        self.tell(&outbox, &peer, Body::SfuSubscription { sdp, streams });
                    }
                    (Some("attached" | "updated"), Some(sdp)) if subscriber => {
                        let streams = streams(&data["streams"], |f| self.peer_of_feed(f));
                        self.tell(
                            &outbox,
                            &peer,
                            Body::SfuSubscription {
                                sdp,
                                streams: streams.clone(),
                            },
                        );
                        let videos = video_mids(&data["streams"]);
                        if let Some(p) = self.parts.get_mut(&peer) {
                            p.attached = true;
                            p.videos = videos;
                            p.streams = streams;
                        }
                        self.flush(&peer).await;
                        self.configure_layers(&peer, None).await;
                    }
                    _ => tracing::debug!(room = self.room, peer, %event, "SFU event"),
                }
            }
            _ => {}
        }
    }

    /// What a publisher handle hears of other publishers: feeds of people
    /// on other relays come (`publishers`, with their peer id as display
    /// name) and go (`unpublished`, `leaving`). Feeds of people here are
    /// known already.
    async fn feeds_changed(&mut self, data: &Value) {
        let mut came = Vec::new();
        for p in data["publishers"].as_array().into_iter().flatten() {
            let (Some(feed), Some(peer)) = (p["id"].as_u64(), p["display"].as_str()) else {
                continue;
            };
            if self.parts.values().any(|part| part.feed == feed) || self.remote.contains_key(&feed)
            {
                continue;
            }
            self.remote.insert(feed, peer.to_owned());
            came.push(feed);
        }
        for gone in [&data["unpublished"], &data["leaving"]] {
            if let Some(feed) = gone.as_u64() {
                if self.remote.remove(&feed).is_some() {
                    for p in self.parts.values_mut() {
                        p.requested.remove(&feed);
                        p.pending.remove(&feed);
                    }
                }
            }
        }
        let here: Vec<String> = self.parts.keys().cloned().collect();
        for feed in came {
            tracing::info!(
                room = self.room,
                feed,
                peer = self.remote[&feed],
                "a feed through another relay"
            );
            for peer in &here {
                self.want(peer, feed).await;
            }
        }
    }

    /// `peer`'s media reaches Janus: everyone else subscribes to it, and
    /// it to everyone live.
    async fn went_live(&mut self, peer: &str) {
        let Some(part) = self.parts.get_mut(peer) else {
            return;
        };
        part.live = true;
        let feed = part.feed;
        let others: Vec<String> = self
            .parts
            .keys()
            .filter(|id| *id != peer)
            .cloned()
            .collect();
        for other in &others {
            self.want(other, feed).await;
        }
        let live: Vec<u64> = self
            .parts
            .iter()
            .filter(|(id, p)| *id != peer && p.live)
            .map(|(_, p)| p.feed)
            .chain(self.remote.keys().copied())
            .collect();
        for feed in live {
            self.want(peer, feed).await;
        }
    }

    /// `peer` should receive `feed`.
    async fn want(&mut self, peer: &str, feed: u64) {
        let (Some(session), Some(room)) = (&self.session, self.janus_room) else {
            return;
        };
        let Some(part) = self.parts.get_mut(peer) else {
            return;
        };
        if part.requested.contains(&feed) {
            return;
        }
        match part.subscriber {
            None => {
                let handle = match session.attach(VIDEOROOM).await {
                    Ok(handle) => handle,
                    Err(e) => {
                        let outbox = part.outbox.clone();
                        return self.fail(&outbox, peer, format!("cannot subscribe: {e}"));
                    }
                };
                part.subscriber = Some(handle);
                part.requested.insert(feed);
                let join = json!({"request": "join", "room": room, "ptype": "subscriber",
                    "use_msid": true, "streams": [{"feed": feed}]});
                if let Err(e) = session.message(handle, join, None).await {
                    let outbox = part.outbox.clone();
                    self.fail(&outbox, peer, format!("cannot subscribe: {e}"));
                }
            }
            Some(_) if !part.attached => {
                part.pending.insert(feed);
            }
            Some(_) => {
                part.pending.insert(feed);
                self.flush(peer).await;
            }
        }
    }

    /// Asks for the feeds `peer`'s subscription waits for.
    async fn flush(&mut self, peer: &str) {
        let Some(session) = &self.session else {
            return;
        };
        let Some(part) = self.parts.get_mut(peer) else {
            return;
        };
        let (Some(handle), true) = (part.subscriber, part.attached) else {
            return;
        };
        let feeds: Vec<u64> = std::mem::take(&mut part.pending)
            .into_iter()
            .filter(|f| !part.requested.contains(f))
            .collect();
        if feeds.is_empty() {
            return;
        }
        part.requested.extend(&feeds);
        let streams: Vec<Value> = feeds.iter().map(|f| json!({"feed": f})).collect();
        if let Err(e) = session
            .message(
                handle,
                json!({"request": "subscribe", "streams": streams}),
                None,
            )
            .await
        {
            let outbox = part.outbox.clone();
            self.fail(&outbox, peer, format!("cannot subscribe: {e}"));
        }
    }
}

/// The video m-lines of a subscription's `streams`: (mid, feed id).
fn video_mids(list: &Value) -> Vec<(String, u64)> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["type"] == "video" && s["active"].as_bool() != Some(false))
        .filter_map(|s| Some((s["mid"].as_str()?.to_owned(), s["feed_id"].as_u64()?)))
        .collect()
}

/// The `route` message for `peer`.
pub(crate) fn route_text(room: &str, peer: &str, route: peercall_protocol::Route) -> Utf8Bytes {
    said_to(room, peer, Body::Route { route })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn janus_streams_become_peers() {
        let list = json!([
            {"mindex": 0, "mid": "0", "type": "audio", "active": true, "feed_id": 1},
            {"mindex": 1, "mid": "1", "type": "video", "active": true, "feed_id": 1},
            {"mindex": 2, "mid": "2", "type": "video", "active": false, "feed_id": 2},
            {"mindex": 3, "mid": "3", "type": "data", "active": true, "feed_id": 1},
            {"mindex": 4, "mid": "4", "type": "audio", "feed_id": 9},
            {"mindex": 5, "mid": "5", "type": "audio", "feed_id": 2},
        ]);
        let peer_of = |f: u64| match f {
            1 => Some("ada".to_owned()),
            2 => Some("bob".to_owned()),
            _ => None,
        };
        let got = streams(&list, peer_of);
        let got: Vec<(&str, &str, &str)> = got
            .iter()
            .map(|s| (s.mid.as_str(), s.peer.as_str(), s.kind.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("0", "ada", "audio"),
                ("1", "ada", "video"),
                ("5", "bob", "audio")
            ]
        );
        assert!(streams(&json!(null), peer_of).is_empty());
    }
}
