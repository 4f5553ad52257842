//! index.html's early-start script, run in a test as the page runs it.

/// Runs index.html's inline script with its own `location` (changing this
/// page's hash would move any app another test left mounted into a call);
/// returns `window.peercallEarly`.
pub fn run(search: &str, host: &str) -> wasm_bindgen::JsValue {
    let html = include_str!("../../index.html");
    let start = html
        .find("<script>")
        .expect("index.html has an inline script")
        + "<script>".len();
    let end = start + html[start..].find("</script>").expect("closed");
    let location = js_sys::Object::new();
    for (k, v) in [
        ("hash", "#earlystartroom"),
        ("search", search),
        ("protocol", "http:"),
        ("host", host),
    ] {
        js_sys::Reflect::set(&location, &k.into(), &v.into()).unwrap();
    }
    js_sys::Function::new_with_args("location", &html[start..end])
        .call1(&wasm_bindgen::JsValue::NULL, &location)
        .expect("the page script runs");
    js_sys::Reflect::get(&web_sys::window().unwrap(), &"peercallEarly".into()).unwrap()
}
