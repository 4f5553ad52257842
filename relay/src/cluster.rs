//! Several relays as one (`--redis`): the bus between them, on Redis.
//!
//! Each relay keeps its own connections and, for every room it has members
//! in, a mirror of the members on other relays ([`crate::rooms`]). Redis
//! holds who is where and decides every admission, so the room limit and
//! `id_taken` hold across relays with no race:
//!
//! - `peercall:room:{room}`: a hash, peer id -> `relay \t conn \t name`
//!   (name `=text`, or empty for none);
//! - `peercall:members:{relay}`: a set of `room \t peer`, what that relay
//!   holds (so its members can be found when it dies);
//! - `peercall:alive:{relay}`: its local connection count, with a TTL the
//!   relay refreshes every second; `peercall:relays`: every relay id;
//! - `peercall:sfu:{room}`: where the room's media lives on the SFU
//!   (`janus url \t VideoRoom room id`, [`crate::sfu`]): the first relay
//!   to need it says, every other relay goes there; it goes with the
//!   room's last member.
//!
//! Messages travel on one channel per relay, `peercall:relay:{id}`, so a
//! relay subscribes once and a message goes only where its recipients are.
//! Every Redis command goes through one task ([`run`]) in the order the
//! connection tasks asked, so messages from one sender keep their order.
//! Admissions, heartbeats and reaping are Lua scripts (atomic in Redis).
//!
//! Without Redis (down, cut off) each relay carries on with its own members:
//! joins are decided locally, messages for other relays are dropped. When it
//! is back the relay announces its members again, compares each room with
//! its mirror, tells its clients who came and went, and tells the other
//! relays of its members with a `join` (clients answer a known peer's join
//! with `present`, docs/PROTOCOL.md 4.3).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Script, Value};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::{lock, State};

/// Every key starts with this (pick another Redis database to share one
/// Redis between deployments).
const PREFIX: &str = "peercall:";
/// How often a relay says it is alive (and looks for dead ones).
const BEAT: Duration = Duration::from_secs(1);
/// A Redis command that takes longer means the link is gone.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a join waits for Redis before being decided locally.
const ADMIT_TIMEOUT: Duration = Duration::from_secs(2);
/// Commands sent in one pipeline, at most.
const BATCH: usize = 512;

/// A member on another relay, as this relay knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Remote {
    pub(crate) relay: Arc<str>,
    pub(crate) name: Option<String>,
}

/// What Redis said of a join.
pub(crate) enum Admission {
    /// In: everyone in the room now (this peer included), by id.
    Admitted(BTreeMap<String, Remote>),
    /// Refused with this error code (`id_taken`, `room_full`).
    Refused(&'static str),
    /// Redis is not there: decide locally.
    Alone,
}

/// What crosses the bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A member came (its `join`): add it to the mirror, forward.
    Join,
    /// A member went (its `leave`, or one said for it): drop it, forward.
    Leave,
    /// Anything else: forward to `to`, or to the room.
    Message,
}

/// One message on the bus: which room and member it is about, and the
/// text to give the local members, unchanged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Wire {
    pub(crate) kind: Kind,
    pub(crate) room: String,
    pub(crate) from: String,
    pub(crate) to: Option<String>,
    /// The relay `from` is on.
    pub(crate) relay: Arc<str>,
    pub(crate) name: Option<String>,
    pub(crate) text: Utf8Bytes,
}

impl Wire {
    /// Lines: kind, room, from, to, relay, name, then the text. Ids and
    /// relay ids have no line breaks, names no control characters.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let kind = match self.kind {
            Kind::Join => "j",
            Kind::Leave => "l",
            Kind::Message => "m",
        };
        format!(
            "{kind}\n{}\n{}\n{}\n{}\n{}\n{}",
            self.room,
            self.from,
            self.to.as_deref().unwrap_or_default(),
            self.relay,
            name_field(self.name.as_deref()),
            self.text.as_str()
        )
        .into_bytes()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(bytes).ok()?;
        let mut parts = text.splitn(7, '\n');
        let kind = match parts.next()? {
            "j" => Kind::Join,
            "l" => Kind::Leave,
            "m" => Kind::Message,
            _ => return None,
        };
        let room = parts.next()?.to_owned();
        let from = parts.next()?.to_owned();
        let to = Some(parts.next()?)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        let relay = Arc::from(parts.next()?);
        let name = parts.next()?.strip_prefix('=').map(str::to_owned);
        let text = parts.next()?;
        Some(Self {
            kind,
            room,
            from,
            to,
            relay,
            name,
            text: text.into(),
        })
    }
}

/// A name as the bus and the room hashes carry it: `=name`, or nothing.
fn name_field(name: Option<&str>) -> String {
    name.map(|n| format!("={n}")).unwrap_or_default()
}

/// A member's value in its room's hash (as [`ADMIT`] writes it).
#[cfg(test)]
fn member_value(relay: &str, conn: u64, name: Option<&str>) -> String {
    format!("{relay}\t{conn}\t{}", name_field(name))
}

fn parse_member(value: &str) -> Option<Remote> {
    let mut parts = value.splitn(3, '\t');
    let relay = parts.next()?;
    parts.next()?;
    let name = parts.next()?.strip_prefix('=').map(str::to_owned);
    Some(Remote {
        relay: relay.into(),
        name,
    })
}

/// Admits `ARGV[1]` into room hash `KEYS[1]` for relay `ARGV[2]` (its
/// members set `KEYS[2]`), connection `ARGV[3]`, name `ARGV[4]`, at most
/// `ARGV[5]` live members. An id held by a relay that is no longer alive is
/// taken over. Gives `{"ok", field, value, ...}` or `{code}`.
const ADMIT: &str = r"
local p, peer, me, conn = ARGV[7], ARGV[1], ARGV[2], ARGV[3]
local mine = me .. '\t' .. conn .. '\t'
local function holder(v) return string.sub(v, 1, (string.find(v, '\t', 1, true) or 0) - 1) end
local alive = {}
local function is_alive(r)
  if alive[r] == nil then alive[r] = redis.call('EXISTS', p .. 'alive:' .. r) == 1 end
  return alive[r]
end
alive[me] = true
local cur = redis.call('HGET', KEYS[1], peer)
if cur then
  if string.sub(cur, 1, #mine) ~= mine then
    local h = holder(cur)
    if h == me or is_alive(h) then return {'id_taken'} end
    redis.call('SREM', p .. 'members:' .. h, ARGV[6] .. '\t' .. peer)
  end
elseif redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[5]) then
  local live = 0
  for _, v in ipairs(redis.call('HVALS', KEYS[1])) do
    if is_alive(holder(v)) then live = live + 1 end
  end
  if live >= tonumber(ARGV[5]) then return {'room_full'} end
end
redis.call('HSET', KEYS[1], peer, mine .. ARGV[4])
redis.call('SADD', KEYS[2], ARGV[6] .. '\t' .. peer)
local out = redis.call('HGETALL', KEYS[1])
table.insert(out, 1, 'ok')
return out
";

/// Takes peer `ARGV[1]` out of room hash `KEYS[1]` if relay `ARGV[2]`'s
/// connection `ARGV[3]` still holds it.
/// The room's SFU placement `KEYS[3]` goes with its last member.
const GONE: &str = r"
local cur = redis.call('HGET', KEYS[1], ARGV[1])
local mine = ARGV[2] .. '\t' .. ARGV[3] .. '\t'
if cur and string.sub(cur, 1, #mine) == mine then
  redis.call('HDEL', KEYS[1], ARGV[1])
  if redis.call('HLEN', KEYS[1]) == 0 then redis.call('DEL', KEYS[3]) end
end
redis.call('SREM', KEYS[2], ARGV[4] .. '\t' .. ARGV[1])
return 0
";

/// The heartbeat: relay `ARGV[2]` is alive with `ARGV[3]` connections for
/// `ARGV[4]` ms. Every relay whose key expired is reaped: its members
/// leave their rooms. Gives `{total connections, {room, peer, dead relay,
/// relays still in the room (comma-separated)}...}`.
const BEAT_SCRIPT: &str = r"
local p, me = ARGV[1], ARGV[2]
redis.call('SET', p .. 'alive:' .. me, ARGV[3], 'PX', ARGV[4])
redis.call('SADD', p .. 'relays', me)
local function holder(v) return string.sub(v, 1, (string.find(v, '\t', 1, true) or 0) - 1) end
local total, reaped = 0, {}
for _, relay in ipairs(redis.call('SMEMBERS', p .. 'relays')) do
  local n = redis.call('GET', p .. 'alive:' .. relay)
  if n then
    total = total + (tonumber(n) or 0)
  else
    local set = p .. 'members:' .. relay
    for _, entry in ipairs(redis.call('SMEMBERS', set)) do
      local tab = string.find(entry, '\t', 1, true)
      if tab then
        local room, peer = string.sub(entry, 1, tab - 1), string.sub(entry, tab + 1)
        local key = p .. 'room:' .. room
        local cur = redis.call('HGET', key, peer)
        if cur and holder(cur) == relay then
          redis.call('HDEL', key, peer)
          if redis.call('HLEN', key) == 0 then redis.call('DEL', p .. 'sfu:' .. room) end
          local seen, list = {}, {}
          for _, v in ipairs(redis.call('HVALS', key)) do
            local h = holder(v)
            if not seen[h] then seen[h] = true; table.insert(list, h) end
          end
          table.insert(reaped, room); table.insert(reaped, peer)
          table.insert(reaped, relay); table.insert(reaped, table.concat(list, ','))
        end
      end
    end
    redis.call('DEL', set)
    redis.call('SREM', p .. 'relays', relay)
  end
end
return {total, reaped}
";

/// Where room `KEYS[1]`'s SFU is: the placement there, unless it is
/// `ARGV[2]` (one that failed) or there is none; then `ARGV[1]` becomes it.
const PLACE: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[2] then return cur end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
";

/// A relay that stops says so at once rather than after its TTL.
const BYE: &str = r"
redis.call('DEL', ARGV[1] .. 'alive:' .. ARGV[2], ARGV[1] .. 'members:' .. ARGV[2])
redis.call('SREM', ARGV[1] .. 'relays', ARGV[2])
return 0
";

enum Job {
    Admit {
        room: String,
        peer: String,
        conn: u64,
        name: Option<String>,
        max: usize,
        reply: oneshot::Sender<Admission>,
    },
    Gone {
        room: String,
        peer: String,
        conn: u64,
    },
    Publish {
        relay: Arc<str>,
        payload: Vec<u8>,
    },
    /// [`PLACE`].
    Place {
        room: String,
        proposal: String,
        failed: String,
        reply: oneshot::Sender<Option<String>>,
    },
    /// Shutting down: say goodbye, then answer.
    Bye(oneshot::Sender<()>),
}

/// This relay's side of the cluster.
#[derive(Debug)]
pub(crate) struct Cluster {
    /// This relay's id.
    pub(crate) id: Arc<str>,
    client: redis::Client,
    url: String,
    ttl: Duration,
    jobs: mpsc::UnboundedSender<Job>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Job>>>,
    connected: AtomicBool,
    /// Connections on every relay, at the last heartbeat (-1: unknown).
    everywhere: AtomicI64,
    /// Members joined while Redis was away, to announce.
    unannounced: AtomicBool,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

impl Cluster {
    /// Checks the URL; connects later, in [`run`].
    pub(crate) fn new(url: &str, id: &str, ttl: Duration) -> Result<Self, String> {
        let info = redis::IntoConnectionInfo::into_connection_info(url)
            .map_err(|e| format!("--redis {url:?}: {e}"))?;
        // Messages should leave at once, as on the clients' sockets.
        let nodelay = info.tcp_settings().clone().set_nodelay(true);
        let client = redis::Client::open(info.set_tcp_settings(nodelay))
            .map_err(|e| format!("--redis {url:?}: {e}"))?;
        let (jobs, rx) = mpsc::unbounded_channel();
        Ok(Self {
            id: id.into(),
            client,
            url: url.to_owned(),
            ttl,
            jobs,
            rx: Mutex::new(Some(rx)),
            connected: AtomicBool::new(false),
            everywhere: AtomicI64::new(-1),
            unannounced: AtomicBool::new(false),
        })
    }

    pub(crate) fn connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }

    /// Connections on every relay, if Redis is there to say.
    pub(crate) fn everywhere(&self) -> Option<u64> {
        u64::try_from(self.everywhere.load(Ordering::Relaxed)).ok()
    }

    /// Asks Redis to admit `peer` into `room`. A join Redis did not
    /// decide (it is away, or too slow) is announced when it is back.
    pub(crate) async fn admit(
        &self,
        room: &str,
        peer: &str,
        conn: u64,
        name: Option<&str>,
        max: usize,
    ) -> Admission {
        let admission = self.ask(room, peer, conn, name, max).await;
        if matches!(admission, Admission::Alone) {
            self.unannounced.store(true, Ordering::Release);
        }
        admission
    }

    async fn ask(
        &self,
        room: &str,
        peer: &str,
        conn: u64,
        name: Option<&str>,
        max: usize,
    ) -> Admission {
        if !self.connected() {
            return Admission::Alone;
        }
        let (reply, answer) = oneshot::channel();
        let job = Job::Admit {
            room: room.to_owned(),
            peer: peer.to_owned(),
            conn,
            name: name.map(str::to_owned),
            max,
            reply,
        };
        if self.jobs.send(job).is_err() {
            return Admission::Alone;
        }
        match tokio::time::timeout(ADMIT_TIMEOUT, answer).await {
            Ok(Ok(admission)) => admission,
            _ => Admission::Alone,
        }
    }

    /// `peer` (on connection `conn`) is no longer in `room`.
    pub(crate) fn gone(&self, room: &str, peer: &str, conn: u64) {
        if self.connected() {
            let _ = self.jobs.send(Job::Gone {
                room: room.to_owned(),
                peer: peer.to_owned(),
                conn,
            });
        }
    }

    /// Sends `wire` to each relay in `relays` (not this one).
    pub(crate) fn publish<'a>(&self, relays: impl IntoIterator<Item = &'a Arc<str>>, wire: &Wire) {
        if !self.connected() {
            return;
        }
        let mut payload = None;
        for relay in relays {
            if **relay == *self.id {
                continue;
            }
            let payload = payload.get_or_insert_with(|| wire.encode()).clone();
            let _ = self.jobs.send(Job::Publish {
                relay: relay.clone(),
                payload,
            });
        }
    }

    /// Where `room`'s media lives on the SFU, as every relay in it agrees:
    /// the placement in Redis unless it is `failed` (or there is none),
    /// else `proposal`, which then becomes it. `None`: Redis is away.
    pub(crate) async fn place(
        &self,
        room: &str,
        proposal: &str,
        failed: Option<&str>,
    ) -> Option<String> {
        if !self.connected() {
            return None;
        }
        let (reply, answer) = oneshot::channel();
        let job = Job::Place {
            room: room.to_owned(),
            proposal: proposal.to_owned(),
            failed: failed.unwrap_or_default().to_owned(),
            reply,
        };
        self.jobs.send(job).ok()?;
        tokio::time::timeout(ADMIT_TIMEOUT, answer)
            .await
            .ok()?
            .ok()
            .flatten()
    }

    /// Tells the other relays this one is gone (at shutdown), waiting for
    /// what was queued before to go out.
    pub(crate) async fn bye(&self) {
        if !self.connected() {
            return;
        }
        let (done, finished) = oneshot::channel();
        if self.jobs.send(Job::Bye(done)).is_ok() {
            let _ = tokio::time::timeout(COMMAND_TIMEOUT, finished).await;
        }
    }

    fn channel(relay: &str) -> String {
        format!("{PREFIX}relay:{relay}")
    }
}

/// Distinct relays of a room's mirror.
pub(crate) fn relays_of(remote: &BTreeMap<String, Remote>) -> Vec<Arc<str>> {
    let mut relays: Vec<Arc<str>> = Vec::new();
    for r in remote.values() {
        if !relays.contains(&r.relay) {
            relays.push(r.relay.clone());
        }
    }
    relays
}

/// The scripts, loaded into Redis on each connection.
struct Scripts {
    admit: Script,
    gone: Script,
    beat: Script,
    bye: Script,
    place: Script,
}

impl Scripts {
    /// [`ADMIT`] for `peer` of relay `me`'s connection `conn` into `room`.
    fn admit(
        &self,
        me: &str,
        room: &str,
        peer: &str,
        conn: u64,
        name: Option<&str>,
        max: usize,
    ) -> redis::ScriptInvocation<'_> {
        let mut invocation = self.admit.prepare_invoke();
        invocation
            .key(room_key(room))
            .key(members_key(me))
            .arg(peer)
            .arg(me)
            .arg(conn)
            .arg(name_field(name))
            .arg(max)
            .arg(room)
            .arg(PREFIX);
        invocation
    }
}

/// The bus: connects to Redis (again and again, with backoff), and while
/// connected carries out jobs, delivers what comes for this relay, beats
/// and reaps. Runs until the process ends.
pub(crate) async fn run(state: Arc<State>) {
    let Some(cluster) = state.cluster.clone() else {
        return;
    };
    let Some(mut jobs) = lock(&cluster.rx).take() else {
        return;
    };
    let scripts = Scripts {
        admit: Script::new(ADMIT),
        gone: Script::new(GONE),
        beat: Script::new(BEAT_SCRIPT),
        bye: Script::new(BYE),
        place: Script::new(PLACE),
    };
    let mut delay = Duration::from_millis(100);
    let mut told_down = false;
    loop {
        match connect(&cluster, &scripts).await {
            Ok((conn, messages)) => {
                delay = Duration::from_millis(100);
                told_down = false;
                tracing::info!(relay = %cluster.id, redis = %cluster.url, "cluster: connected to Redis");
                let why = connected(&state, &cluster, &scripts, conn, messages, &mut jobs).await;
                cluster.connected.store(false, Ordering::Release);
                cluster.everywhere.store(-1, Ordering::Relaxed);
                match why {
                    None => return,
                    Some(why) => tracing::warn!(
                        relay = %cluster.id,
                        "cluster: lost Redis ({why}); serving local rooms only, reconnecting"
                    ),
                }
            }
            Err(e) => {
                if !told_down {
                    told_down = true;
                    tracing::warn!(relay = %cluster.id, redis = %cluster.url, error = %e,
                        "cluster: Redis unreachable; serving local rooms only, retrying");
                }
            }
        }
        // Whatever was asked meanwhile cannot be done; joins go local.
        let wait = tokio::time::sleep(delay);
        tokio::pin!(wait);
        loop {
            tokio::select! {
                () = &mut wait => break,
                job = jobs.recv() => match job {
                    None => return,
                    Some(job) => refuse(job),
                },
            }
        }
        delay = (delay * 2).min(Duration::from_secs(1));
    }
}

/// A job that cannot be carried out (Redis is away).
fn refuse(job: Job) {
    match job {
        Job::Admit { reply, .. } => {
            let _ = reply.send(Admission::Alone);
        }
        Job::Place { reply, .. } => {
            let _ = reply.send(None);
        }
        Job::Bye(done) => {
            let _ = done.send(());
        }
        Job::Gone { .. } | Job::Publish { .. } => {}
    }
}

type Messages = std::pin::Pin<Box<dyn futures_util::Stream<Item = redis::Msg> + Send>>;

async fn connect(
    cluster: &Cluster,
    scripts: &Scripts,
) -> redis::RedisResult<(MultiplexedConnection, Messages)> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(COMMAND_TIMEOUT))
        .set_response_timeout(Some(COMMAND_TIMEOUT));
    let mut conn = cluster
        .client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    for script in [
        &scripts.admit,
        &scripts.gone,
        &scripts.beat,
        &scripts.bye,
        &scripts.place,
    ] {
        script.prepare_invoke().load_async(&mut conn).await?;
    }
    let mut pubsub = tokio::time::timeout(COMMAND_TIMEOUT, cluster.client.get_async_pubsub())
        .await
        .map_err(|_| timeout_error())??;
    tokio::time::timeout(
        COMMAND_TIMEOUT,
        pubsub.subscribe(Cluster::channel(&cluster.id)),
    )
    .await
    .map_err(|_| timeout_error())??;
    Ok((conn, Box::pin(pubsub.into_on_message())))
}

fn timeout_error() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "Redis did not answer in time",
    ))
}

/// Serves while Redis is there; gives why it stopped (`None`: shutdown).
async fn connected(
    state: &Arc<State>,
    cluster: &Cluster,
    scripts: &Scripts,
    mut conn: MultiplexedConnection,
    mut messages: Messages,
    jobs: &mut mpsc::UnboundedReceiver<Job>,
) -> Option<String> {
    // Jobs queued while away are stale (joins were decided locally).
    while let Ok(job) = jobs.try_recv() {
        refuse(job);
    }
    // Connected from here: what the first beat reaps is told to the
    // other relays, and joins queue behind the announcement.
    cluster.connected.store(true, Ordering::Release);
    if let Err(e) = beat(state, cluster, scripts, &mut conn).await {
        return Some(e.to_string());
    }
    if let Err(e) = announce(state, cluster, scripts, &mut conn).await {
        return Some(e.to_string());
    }
    let mut tick = tokio::time::interval(BEAT);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    // What comes for this relay is delivered while commands are under way
    // (both are polled by the one select below, neither waits for the
    // other's round trips).
    let receive = async {
        while let Some(m) = messages.next().await {
            match Wire::decode(m.get_payload_bytes()) {
                Some(wire) => state.rooms.on_bus(state, wire),
                None => tracing::warn!("cluster: an unreadable message on the bus, dropped"),
            }
        }
        "the subscription ended".to_owned()
    };
    let work = async {
        let mut batch = Vec::with_capacity(BATCH);
        loop {
            tokio::select! {
                n = jobs.recv_many(&mut batch, BATCH) => {
                    if n == 0 {
                        return None;
                    }
                    if let Err(e) = carry_out(cluster, scripts, &mut conn, &mut batch).await {
                        return Some(e.to_string());
                    }
                }
                _ = tick.tick() => {
                    if let Err(e) = beat(state, cluster, scripts, &mut conn).await {
                        return Some(e.to_string());
                    }
                    if cluster.unannounced.swap(false, Ordering::AcqRel) {
                        if let Err(e) = announce(state, cluster, scripts, &mut conn).await {
                            cluster.unannounced.store(true, Ordering::Release);
                            return Some(e.to_string());
                        }
                    }
                }
            }
        }
    };
    tokio::select! {
        why = receive => Some(why),
        why = work => why,
    }
}

fn room_key(room: &str) -> String {
    format!("{PREFIX}room:{room}")
}

fn sfu_key(room: &str) -> String {
    format!("{PREFIX}sfu:{room}")
}

fn members_key(relay: &str) -> String {
    format!("{PREFIX}members:{relay}")
}

/// One pipeline for a batch of jobs, answers in order.
async fn carry_out(
    cluster: &Cluster,
    scripts: &Scripts,
    conn: &mut MultiplexedConnection,
    batch: &mut Vec<Job>,
) -> redis::RedisResult<()> {
    let mut pipe = redis::pipe();
    let mut bye = None;
    for job in batch.iter() {
        match job {
            Job::Admit {
                room,
                peer,
                conn: id,
                name,
                max,
                ..
            } => {
                let admit = scripts.admit(&cluster.id, room, peer, *id, name.as_deref(), *max);
                pipe.invoke_script(&admit);
            }
            Job::Gone {
                room,
                peer,
                conn: id,
            } => {
                pipe.invoke_script(
                    scripts
                        .gone
                        .key(room_key(room))
                        .key(members_key(&cluster.id))
                        .key(sfu_key(room))
                        .arg(peer)
                        .arg(&*cluster.id)
                        .arg(id)
                        .arg(room),
                );
            }
            Job::Publish { relay, payload } => {
                pipe.publish(Cluster::channel(relay), payload.as_slice());
            }
            Job::Place {
                room,
                proposal,
                failed,
                ..
            } => {
                pipe.invoke_script(scripts.place.key(sfu_key(room)).arg(proposal).arg(failed));
            }
            Job::Bye(_) => {
                pipe.invoke_script(scripts.bye.arg(PREFIX).arg(&*cluster.id));
            }
        }
    }
    let result: redis::RedisResult<Vec<Value>> = pipe.query_async(conn).await;
    let answers = match result {
        Ok(answers) => answers,
        Err(e) => {
            for job in batch.drain(..) {
                refuse(job);
            }
            return Err(e);
        }
    };
    let mut answers = answers.into_iter();
    for job in batch.drain(..) {
        let answer = answers.next();
        match job {
            Job::Admit { reply, .. } => {
                let _ = reply.send(answer.map_or(Admission::Alone, admission));
            }
            Job::Place { reply, .. } => {
                let _ = reply.send(answer.and_then(|v| redis::from_redis_value(v).ok()));
            }
            Job::Bye(done) => bye = Some(done),
            Job::Gone { .. } | Job::Publish { .. } => {}
        }
    }
    if let Some(done) = bye {
        cluster.connected.store(false, Ordering::Release);
        let _ = done.send(());
    }
    Ok(())
}

fn admission(answer: Value) -> Admission {
    let Value::Array(items) = answer else {
        return Admission::Alone;
    };
    let mut items = items.into_iter().map(|v| match v {
        Value::BulkString(b) => String::from_utf8(b).unwrap_or_default(),
        Value::SimpleString(s) => s,
        _ => String::new(),
    });
    match items.next().as_deref() {
        Some("ok") => {}
        Some("id_taken") => return Admission::Refused(peercall_protocol::codes::ID_TAKEN),
        Some("room_full") => return Admission::Refused(peercall_protocol::codes::ROOM_FULL),
        _ => return Admission::Alone,
    }
    let mut members = BTreeMap::new();
    while let (Some(peer), Some(value)) = (items.next(), items.next()) {
        if let Some(member) = parse_member(&value) {
            members.insert(peer, member);
        }
    }
    Admission::Admitted(members)
}

/// The heartbeat; reaped members are told to their rooms.
async fn beat(
    state: &Arc<State>,
    cluster: &Cluster,
    scripts: &Scripts,
    conn: &mut MultiplexedConnection,
) -> redis::RedisResult<()> {
    let ttl_ms = cluster.ttl.as_millis().max(1) as u64;
    let (total, reaped): (i64, Vec<String>) = scripts
        .beat
        .arg(PREFIX)
        .arg(&*cluster.id)
        .arg(state.websockets.now())
        .arg(ttl_ms)
        .invoke_async(conn)
        .await?;
    cluster.everywhere.store(total, Ordering::Relaxed);
    for entry in reaped.chunks_exact(4) {
        let [room, peer, dead, relays] = entry else {
            continue;
        };
        tracing::info!(
            room,
            peer,
            relay = dead,
            "cluster: a relay went away; its peer left"
        );
        let wire = Wire {
            kind: Kind::Leave,
            room: room.clone(),
            from: peer.clone(),
            to: None,
            relay: dead.as_str().into(),
            name: None,
            text: crate::rooms::leave_text(room, peer, false),
        };
        let relays: Vec<Arc<str>> = relays
            .split(',')
            .filter(|r| !r.is_empty())
            .map(Arc::from)
            .collect();
        if relays.iter().any(|r| **r == *cluster.id) {
            state.rooms.on_bus(state, wire.clone());
        }
        cluster.publish(&relays, &wire);
    }
    Ok(())
}

/// Puts every local member (back) into Redis, then brings each room's
/// mirror up to date: clients hear of who came and went meanwhile, and
/// the other relays in the room of our members.
async fn announce(
    state: &Arc<State>,
    cluster: &Cluster,
    scripts: &Scripts,
    conn: &mut MultiplexedConnection,
) -> redis::RedisResult<()> {
    let locals = state.rooms.locals();
    if locals.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for (room, peer, id, name) in &locals {
        // Members already in their calls: no room limit.
        let admit = scripts.admit(
            &cluster.id,
            room,
            peer,
            *id,
            name.as_deref(),
            usize::MAX / 2,
        );
        pipe.invoke_script(&admit);
    }
    let answers: Vec<Value> = pipe.query_async(conn).await?;
    let mut rooms: HashMap<String, BTreeMap<String, Remote>> = HashMap::new();
    for ((room, peer, ..), answer) in locals.iter().zip(answers) {
        match admission(answer) {
            Admission::Admitted(members) => {
                rooms.insert(room.clone(), members);
            }
            Admission::Refused(code) => tracing::warn!(
                room,
                peer,
                code,
                "cluster: another relay took this peer's place while Redis was away"
            ),
            Admission::Alone => {}
        }
    }
    for (room, members) in rooms {
        state.rooms.resync(state, &room, members);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_round_trips() {
        for (kind, to, name, text) in [
            (
                Kind::Join,
                None,
                Some("Ann Lee"),
                r#"{"v":1,"type":"join"}"#,
            ),
            (
                Kind::Message,
                Some("bob"),
                None,
                "{\"sdp\":\"a\\r\\nb\"}\nx",
            ),
            (Kind::Leave, None, Some(""), ""),
        ] {
            let wire = Wire {
                kind,
                room: "r-1".into(),
                from: "alice_2".into(),
                to: to.map(str::to_owned),
                relay: "host-12-abc".into(),
                name: name.map(str::to_owned),
                text: text.into(),
            };
            assert_eq!(Wire::decode(&wire.encode()), Some(wire));
        }
        for bad in [
            &b""[..],
            b"x\nr\nf\n\nrelay\n\n{}",
            b"m\nr\nf",
            &[0xff, b'\n'],
        ] {
            assert_eq!(Wire::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn member_values_round_trip() {
        for name in [None, Some("Ann"), Some("")] {
            let value = member_value("relay-1", 42, name);
            assert_eq!(
                parse_member(&value),
                Some(Remote {
                    relay: "relay-1".into(),
                    name: name.map(str::to_owned)
                })
            );
        }
        assert_eq!(parse_member("no tabs"), None);
    }
}
