//! [`Mode::Broadcast`](crate::Mode::Broadcast): every text message goes to
//! every connection, the sender included. No rooms, ids or errors: this is
//! the plainest relay there is, kept so tests prove the app needs nothing
//! more.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::lock;
use crate::outbox::Outbox;

/// Every open connection.
#[derive(Debug, Default)]
pub(crate) struct Everyone {
    all: Mutex<HashMap<u64, Outbox>>,
}

impl Everyone {
    pub(crate) fn add(&self, outbox: &Outbox) {
        lock(&self.all).insert(outbox.conn, outbox.clone());
    }

    pub(crate) fn remove(&self, conn: u64) {
        lock(&self.all).remove(&conn);
    }

    pub(crate) fn broadcast(&self, text: Utf8Bytes) {
        for outbox in lock(&self.all).values() {
            outbox.deliver(text.clone());
        }
    }
}
