//! Accessibility checks: axe-core run in the page, and what only Chromium's
//! DevTools protocol can set (the colour scheme and reduced motion the page
//! sees).
//!
//! axe-core comes from npm at a pinned version (`scripts/lib.sh`,
//! `axe_core`), its path in `PEERCALL_AXE_JS`.

use serde_json::{json, Value};

use crate::{required_env, Browser, Kind, Result};

/// A DevTools protocol command through chromedriver
/// (`POST /session/{id}/goog/cdp/execute`).
#[derive(Debug)]
struct Cdp {
    cmd: String,
    params: Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/goog/cdp/execute",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({"cmd": self.cmd, "params": self.params});
        (http::Method::POST, Some(body.to_string()))
    }
}

impl Browser {
    /// Runs a DevTools protocol command (Chromium only).
    pub async fn cdp(&self, cmd: &str, params: Value) -> Result<Value> {
        if self.kind != Kind::Chromium {
            return Err(format!("{}: no DevTools protocol", self.kind.name()));
        }
        self.client
            .issue_cmd(Cdp {
                cmd: cmd.to_owned(),
                params,
            })
            .await
            .map_err(|e| format!("chromium: {cmd}: {e}"))
    }

    /// What the page's media queries see: `prefers-color-scheme`
    /// (`"light"` or `"dark"`) and `prefers-reduced-motion` (`"reduce"` or
    /// `""`, the browser's own).
    pub async fn emulate(&self, scheme: &str, motion: &str) -> Result<()> {
        self.cdp(
            "Emulation.setEmulatedMedia",
            json!({"features": [
                {"name": "prefers-color-scheme", "value": scheme},
                {"name": "prefers-reduced-motion", "value": motion},
            ]}),
        )
        .await
        .map(drop)
    }

    /// Runs axe-core (every rule it runs by default, every impact) on the
    /// page as it is now; gives each violation as a readable paragraph:
    /// the rule, its impact and help text, and each element with what to
    /// fix. Empty: nothing to fix.
    pub async fn axe(&self) -> Result<Vec<String>> {
        if self.js("return !!window.axe").await? != Value::Bool(true) {
            let path = required_env("PEERCALL_AXE_JS")?;
            let source =
                std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            self.js(&format!("{source}\n;return true;")).await?;
        }
        let result = self
            .js(r#"return axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map(v => ({
                    id: v.id, impact: v.impact, help: v.help, url: v.helpUrl,
                    nodes: v.nodes.map(n => ({target: n.target.join(' '), html: n.html.slice(0, 160),
                                              fix: n.failureSummary}))})))"#)
            .await?;
        let Value::Array(violations) = result else {
            return Err(format!("axe gave no list of violations: {result}"));
        };
        Ok(violations
            .iter()
            .map(|v| {
                let mut out = format!(
                    "{} ({}): {} <{}>",
                    v["id"].as_str().unwrap_or("?"),
                    v["impact"].as_str().unwrap_or("?"),
                    v["help"].as_str().unwrap_or(""),
                    v["url"].as_str().unwrap_or("")
                );
                for n in v["nodes"].as_array().into_iter().flatten() {
                    out.push_str(&format!(
                        "\n    at {}: {}\n      {}",
                        n["target"].as_str().unwrap_or("?"),
                        n["html"].as_str().unwrap_or(""),
                        n["fix"].as_str().unwrap_or("").replace('\n', "\n      ")
                    ));
                }
                out
            })
            .collect())
    }
}

/// A key to press: a character, or one of WebDriver's named keys.
pub use fantoccini::key::Key;

impl Browser {
    /// Presses `key` (with Shift if `shift`) as a person at the keyboard
    /// would: a key down and up, delivered to whatever has the focus.
    pub async fn press(&self, key: impl Into<char>, shift: bool) -> Result<()> {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        let key = key.into();
        let shift_key: char = Key::Shift.into();
        let mut actions = KeyActions::new("keyboard".into());
        if shift {
            actions = actions.then(KeyAction::Down { value: shift_key });
        }
        actions = actions
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key });
        if shift {
            actions = actions.then(KeyAction::Up { value: shift_key });
        }
        self.client
            .perform_actions(actions)
            .await
            .map_err(|e| format!("{}: key {key:?}: {e}", self.kind.name()))
    }

    /// Types `text`, a key at a time.
    pub async fn type_text(&self, text: &str) -> Result<()> {
        for c in text.chars() {
            self.press(c, false).await?;
        }
        Ok(())
    }

    /// What has the focus: its `data-testid` (or id, or tag), its
    /// accessible text, whether the dialog `inside` (a `data-testid`)
    /// holds it, and whether it shows a focus ring (an outline of 2 px or
    /// more).
    pub async fn focused(&self, inside: &str) -> Result<Value> {
        self.js(&format!(
            "const el = document.activeElement;
             if (!el || el === document.body) return {{what: 'body', inside: false, ring: false}};
             const s = getComputedStyle(el);
             return {{
                 what: el.dataset.testid || el.id || el.tagName.toLowerCase(),
                 text: (el.getAttribute('aria-label') || el.textContent || '').trim().slice(0, 60),
                 inside: !!el.closest('[data-testid={inside}]'),
                 ring: s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2,
             }};"
        ))
        .await
    }
}
