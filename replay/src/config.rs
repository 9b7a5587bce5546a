//! The engine configuration a replay runs with.
//!
//! The journals do not record the engine's capacities, and capacities
//! change outcomes (a full order arena rejects an order), so a replay must
//! use the configuration the pipeline ran with. The default is
//! [`EngineConfig::default`], which is what both pipeline presets
//! (`PipelineConfig::two_core_default`, `dedicated_server`) use; another
//! one comes from a preset name or a JSON file whose fields override the
//! default:
//!
//! ```json
//! { "max_orders": 4096, "max_accounts": 256, "risk": "enabled" }
//! ```

use crate::error::{ReplayError, Result};
use ringex_core::{EngineConfig, RiskMode};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// An [`EngineConfig`] as JSON: every field optional (missing ones keep
/// the default), unknown fields rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineConfigFile {
    /// [`EngineConfig::max_orders`].
    pub max_orders: u32,
    /// [`EngineConfig::max_accounts`].
    pub max_accounts: u32,
    /// [`EngineConfig::max_instruments`].
    pub max_instruments: u32,
    /// [`EngineConfig::max_assets`].
    pub max_assets: u16,
    /// [`EngineConfig::max_positions`].
    pub max_positions: u32,
    /// [`EngineConfig::dedup_window`].
    pub dedup_window: u32,
    /// [`EngineConfig::max_price_levels`].
    pub max_price_levels: u32,
    /// `"enabled"` or `"disabled"` ([`EngineConfig::risk`]).
    pub risk: Risk,
}

/// [`RiskMode`] as JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    /// [`RiskMode::Enabled`].
    Enabled,
    /// [`RiskMode::Disabled`].
    Disabled,
}

impl Default for EngineConfigFile {
    fn default() -> Self {
        EngineConfigFile::from(EngineConfig::default())
    }
}

impl From<EngineConfig> for EngineConfigFile {
    fn from(c: EngineConfig) -> Self {
        EngineConfigFile {
            max_orders: c.max_orders,
            max_accounts: c.max_accounts,
            max_instruments: c.max_instruments,
            max_assets: c.max_assets,
            max_positions: c.max_positions,
            dedup_window: c.dedup_window,
            max_price_levels: c.max_price_levels,
            risk: match c.risk {
                RiskMode::Enabled => Risk::Enabled,
                RiskMode::Disabled => Risk::Disabled,
            },
        }
    }
}

impl From<EngineConfigFile> for EngineConfig {
    fn from(c: EngineConfigFile) -> Self {
        EngineConfig {
            max_orders: c.max_orders,
            max_accounts: c.max_accounts,
            max_instruments: c.max_instruments,
            max_assets: c.max_assets,
            max_positions: c.max_positions,
            dedup_window: c.dedup_window,
            max_price_levels: c.max_price_levels,
            risk: match c.risk {
                Risk::Enabled => RiskMode::Enabled,
                Risk::Disabled => RiskMode::Disabled,
            },
        }
    }
}

/// Parses a JSON engine configuration and validates it.
pub fn parse_engine_config(json: &str, origin: &Path) -> Result<EngineConfig> {
    let file: EngineConfigFile = serde_json::from_str(json).map_err(|e| ReplayError::Config {
        path: origin.to_path_buf(),
        problem: e.to_string(),
    })?;
    let config = EngineConfig::from(file);
    config.validate()?;
    Ok(config)
}

/// Reads and validates a JSON engine configuration file.
pub fn load_engine_config(path: &Path) -> Result<EngineConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| ReplayError::Config {
        path: path.to_path_buf(),
        problem: e.to_string(),
    })?;
    parse_engine_config(&text, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fields_keep_the_pipelines_default() {
        let c = parse_engine_config(r#"{"max_orders": 4096}"#, Path::new("x")).unwrap();
        assert_eq!(
            c,
            EngineConfig {
                max_orders: 4096,
                ..EngineConfig::default()
            }
        );
    }

    #[test]
    fn unknown_fields_and_invalid_capacities_are_errors() {
        assert!(parse_engine_config(r#"{"max_order": 1}"#, Path::new("x")).is_err());
        assert!(parse_engine_config(r#"{"max_orders": 0}"#, Path::new("x")).is_err());
        assert!(parse_engine_config("not json", Path::new("x")).is_err());
    }

    #[test]
    fn a_config_round_trips_through_json() {
        let small = EngineConfigFile::from(EngineConfig::small());
        let json = serde_json::to_string(&small).unwrap();
        assert_eq!(
            parse_engine_config(&json, Path::new("x")).unwrap(),
            EngineConfig::small()
        );
    }
}
