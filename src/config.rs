//! Settings from `DATA_DIR/config.toml`; every field has a default, so the
//! file is optional.

use std::path::Path;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::gateway::GatewayConfig;
use crate::net::NetConfig;
use crate::store::StoreConfig;

/// The configuration file could not be read.
#[derive(Debug, Error)]
#[error("{path}: {reason}")]
pub struct ConfigError {
    path: String,
    reason: String,
}

/// All settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The local store.
    pub store: StoreConfig,
    /// The network.
    pub net: NetConfig,
    /// Address of the local control API (loopback; port 0 picks one).
    pub control: String,
    /// The reader's web gateway.
    pub gateway: GatewayConfig,
    /// Address of `/metrics` (Prometheus) and `/healthz`; none by default.
    /// It may be beyond loopback, for a scraper: it tells which publishers
    /// the node carries and how much it holds, nothing secret.
    pub metrics: Option<String>,
    /// Publishers to carry, by their names in the trust list; empty for
    /// all of them.
    pub carry: Vec<String>,
    /// A mirror's TLS front on 443 (off unless `listen` is set).
    pub front: crate::front::FrontConfig,
    /// The plain-HTTPS channel: web trees to read, and one to write.
    pub web: crate::web::WebConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            store: StoreConfig::default(),
            net: NetConfig::default(),
            control: "127.0.0.1:0".into(),
            gateway: GatewayConfig::default(),
            metrics: None,
            carry: Vec::new(),
            front: crate::front::FrontConfig::default(),
            web: crate::web::WebConfig::default(),
        }
    }
}

impl Config {
    /// Reads `DATA_DIR/config.toml`, or the defaults when there is none.
    pub fn load(data_dir: &Path) -> Result<Self, ConfigError> {
        Self::load_file(&data_dir.join("config.toml"))
    }

    /// The settings of a sealed data directory: the sealed text `base`,
    /// with the plain file at `path` (if there is one) laid over it, key
    /// by key. The plain file of a sealed directory holds what is needed
    /// before unlocking; anything added there later also counts.
    pub fn load_layered(base: Option<&str>, path: &Path) -> Result<Self, ConfigError> {
        let Some(base) = base else {
            return Self::load_file(path);
        };
        let text = Self::layered_text(base, path)?;
        toml::from_str(&text).map_err(|e| ConfigError {
            path: "the settings".into(),
            reason: e.message().to_string(),
        })
    }

    /// The text of [`Config::load_layered`]'s settings, as one file.
    pub fn layered_text(base: &str, path: &Path) -> Result<String, ConfigError> {
        let err = |what: &str, reason: String| ConfigError {
            path: what.to_owned(),
            reason,
        };
        let mut table: toml::Table = toml::from_str(base)
            .map_err(|e| err("the sealed settings", e.message().to_string()))?;
        if path.exists() {
            let text = crate::files::read_bounded_text(path, 1024 * 1024)
                .map_err(|e| err(&path.display().to_string(), e.to_string()))?;
            let over: toml::Table = toml::from_str(&text)
                .map_err(|e| err(&path.display().to_string(), e.message().to_string()))?;
            merge(&mut table, over);
        }
        toml::to_string(&table).map_err(|e| err("the settings", e.to_string()))
    }

    /// The part of these settings a sealed directory keeps in plain text:
    /// where the control API, the gateway (and its lock page) and the
    /// metrics listen. Nothing in it names a publisher, a peer or a source.
    pub fn unlocking_part(&self) -> String {
        let mut t = toml::Table::new();
        t.insert("control".into(), self.control.clone().into());
        if let Some(m) = &self.metrics {
            t.insert("metrics".into(), m.clone().into());
        }
        if let Ok(g) = toml::Value::try_from(&self.gateway) {
            t.insert("gateway".into(), g);
        }
        toml::to_string(&t).unwrap_or_default()
    }

    /// Reads a configuration file, or the defaults when there is none.
    pub fn load_file(path: &Path) -> Result<Self, ConfigError> {
        let path = path.to_owned();
        if !path.exists() {
            return Ok(Self::default());
        }
        let err = |reason: String| ConfigError {
            path: path.display().to_string(),
            reason,
        };
        let text =
            crate::files::read_bounded_text(&path, 1024 * 1024).map_err(|e| err(e.to_string()))?;
        toml::from_str(&text).map_err(|e| err(e.message().to_string()))
    }
}

/// Lays `over` on `base`: tables merge key by key, anything else replaces.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}
