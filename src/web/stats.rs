//! `RTCPeerConnection.getStats()` as a [`Snapshot`]: the report (a maplike
//! of dictionaries) goes over as one JSON array; reading it is pure
//! ([`crate::stats`]).

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::RtcPeerConnection;

use crate::stats::Snapshot;
use crate::web::JsError;

/// The connection's stats now.
pub async fn snapshot(pc: &RtcPeerConnection) -> Result<Snapshot, String> {
    let report = JsFuture::from(pc.get_stats())
        .await
        .map_err(|e| JsError::new("getStats", &e))?;
    let values = js_sys::Reflect::get(&report, &"values".into())
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        .ok_or_else(|| JsError::missing("getStats gave no report"))?
        .call0(&report)
        .map_err(|e| JsError::new("reading the stats report", &e))?;
    let json = js_sys::JSON::stringify(&js_sys::Array::from(&values))
        .map_err(|e| JsError::new("reading the stats report", &e))?;
    Snapshot::parse(&String::from(json))
}
