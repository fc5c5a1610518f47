//! Typed configuration, read once at start-up (DESIGN.md §2).
//!
//! Values come from the environment and from an optional file named by
//! `TESTFLINGER_CONFIG` (default `testflinger.conf` in the working folder,
//! used only if it exists) made of `KEY = "value"` lines. The environment
//! wins. A bad value stops start-up with a message naming the key.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Every key the server reads, with its meaning; the file may hold no other.
pub const KEYS: &[(&str, &str)] = &[
    ("TESTFLINGER_CONFIG", "path of this file (environment only)"),
    (
        "TESTFLINGER_DATA_DIR",
        "folder of the embedded database and blob files",
    ),
    ("TESTFLINGER_MAX_JSON_SIZE", "largest JSON request body"),
    ("TESTFLINGER_MAX_LOG_FRAGMENT_SIZE", "largest log fragment"),
    (
        "TESTFLINGER_MAX_BLOB_SIZE",
        "largest artifact or attachments upload",
    ),
    (
        "TESTFLINGER_RETENTION_DAYS",
        "days jobs, results and blobs are kept",
    ),
    ("TESTFLINGER_LOG_FORMAT", "text or json"),
];

pub const DEFAULT_CONFIG_FILE: &str = "testflinger.conf";
pub const DEFAULT_DATA_DIR: &str = "testflinger-data";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("{key} = {value:?} is not valid: {problem}")]
    Invalid {
        key: String,
        value: String,
        problem: String,
    },
    #[error("configuration file {path}: {problem}")]
    File { path: String, problem: String },
}

/// Request and upload size limits in bytes (SPEC.md §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub json_body: u64,
    pub log_fragment: u64,
    pub blob: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            json_body: 16 << 20,
            log_fragment: 1 << 20,
            blob: 2 << 30,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Where the documents live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// SQLite in the data folder: nothing to install.
    Embedded,
}

/// Where artifacts and attachments live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobConfig {
    /// Files in the data folder.
    Filesystem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub data_dir: PathBuf,
    pub store: StoreConfig,
    pub blobs: BlobConfig,
    pub limits: Limits,
    pub retention_days: u32,
    pub log_format: LogFormat,
}

impl Config {
    /// Reads the process environment and the configuration file.
    pub fn load() -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = std::env::vars().collect();
        let (file, required) = match env.get("TESTFLINGER_CONFIG") {
            Some(path) => (PathBuf::from(path), true),
            None => (PathBuf::from(DEFAULT_CONFIG_FILE), false),
        };
        let mut values = if required || file.exists() {
            read_file(&file)?
        } else {
            HashMap::new()
        };
        values.extend(env);
        Self::from_values(&values)
    }

    /// Builds the configuration from merged key/value pairs.
    pub fn from_values(values: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |key: &str| {
            values
                .get(key)
                .map(String::as_str)
                .filter(|v| !v.is_empty())
        };
        let defaults = Limits::default();
        let limits = Limits {
            json_body: parse_or(
                get,
                "TESTFLINGER_MAX_JSON_SIZE",
                defaults.json_body,
                parse_size,
            )?,
            log_fragment: parse_or(
                get,
                "TESTFLINGER_MAX_LOG_FRAGMENT_SIZE",
                defaults.log_fragment,
                parse_size,
            )?,
            blob: parse_or(get, "TESTFLINGER_MAX_BLOB_SIZE", defaults.blob, parse_size)?,
        };
        let retention_days = parse_or(get, "TESTFLINGER_RETENTION_DAYS", 7, |v| {
            v.parse::<u32>()
                .ok()
                .filter(|d| *d > 0)
                .ok_or_else(|| "expected a whole number of days, 1 or more".to_owned())
        })?;
        let under_lambda = get("AWS_LAMBDA_FUNCTION_NAME").is_some();
        let default_format = if under_lambda {
            LogFormat::Json
        } else {
            LogFormat::Text
        };
        let log_format = parse_or(get, "TESTFLINGER_LOG_FORMAT", default_format, |v| {
            match v.to_ascii_lowercase().as_str() {
                "text" => Ok(LogFormat::Text),
                "json" => Ok(LogFormat::Json),
                _ => Err("expected \"text\" or \"json\"".to_owned()),
            }
        })?;
        Ok(Config {
            data_dir: PathBuf::from(get("TESTFLINGER_DATA_DIR").unwrap_or(DEFAULT_DATA_DIR)),
            store: StoreConfig::Embedded,
            blobs: BlobConfig::Filesystem,
            limits,
            retention_days,
            log_format,
        })
    }

    /// A configuration for the embedded backends in `data_dir`, all else default.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Self {
        let mut config = Self::from_values(&HashMap::new()).expect("defaults are valid");
        config.data_dir = data_dir.into();
        config
    }
}

fn parse_or<'a, T>(
    get: impl Fn(&str) -> Option<&'a str>,
    key: &str,
    default: T,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    match get(key) {
        None => Ok(default),
        Some(value) => parse(value.trim()).map_err(|problem| ConfigError::Invalid {
            key: key.to_owned(),
            value: value.to_owned(),
            problem,
        }),
    }
}

/// A size in bytes: `1048576`, `512KiB`, `16MiB`, `2GiB` (also KB/MB/GB as
/// powers of ten).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| "expected a size such as 1048576, 16MiB or 2GiB".to_owned())?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => return Err(format!("unknown unit {other:?}; use B, KiB, MiB or GiB")),
    };
    number
        .checked_mul(factor)
        .filter(|n| *n > 0)
        .ok_or_else(|| "expected a size above zero that fits in 64 bits".to_owned())
}

/// Reads `KEY = "value"` lines; `#` starts a comment line.
fn read_file(path: &Path) -> Result<HashMap<String, String>, ConfigError> {
    let file_error = |problem: String| ConfigError::File {
        path: path.display().to_string(),
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|e| file_error(e.to_string()))?;
    parse_file(&text).map_err(file_error)
}

pub fn parse_file(text: &str) -> Result<HashMap<String, String>, String> {
    let mut values = HashMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line_no = number + 1;
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("line {line_no}: expected KEY = \"value\""))?;
        let key = key.trim();
        if !KEYS.iter().any(|(known, _)| *known == key) {
            return Err(format!("line {line_no}: unknown setting {key}"));
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        values.insert(key.to_owned(), value.to_owned());
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_are_the_embedded_backends() {
        let config = Config::from_values(&HashMap::new()).unwrap();
        assert_eq!(config.store, StoreConfig::Embedded);
        assert_eq!(config.blobs, BlobConfig::Filesystem);
        assert_eq!(config.data_dir, PathBuf::from("testflinger-data"));
        assert_eq!(config.limits, Limits::default());
        assert_eq!(config.retention_days, 7);
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let err =
            Config::from_values(&values(&[("TESTFLINGER_MAX_JSON_SIZE", "lots")])).unwrap_err();
        assert!(
            err.to_string().contains("TESTFLINGER_MAX_JSON_SIZE"),
            "{err}"
        );
        let err = Config::from_values(&values(&[("TESTFLINGER_LOG_FORMAT", "xml")])).unwrap_err();
        assert!(err.to_string().contains("TESTFLINGER_LOG_FORMAT"), "{err}");
    }

    #[test]
    fn sizes_take_units() {
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("0").is_err());
        assert!(parse_size("5 parsecs").is_err());
    }

    #[test]
    fn the_file_format_is_key_equals_quoted_value() {
        let parsed = parse_file(
            "# comment\nTESTFLINGER_DATA_DIR = \"/srv/tf\"\n\nTESTFLINGER_RETENTION_DAYS=3\n",
        )
        .unwrap();
        assert_eq!(parsed["TESTFLINGER_DATA_DIR"], "/srv/tf");
        assert_eq!(parsed["TESTFLINGER_RETENTION_DAYS"], "3");
        assert!(parse_file("NOT_A_KEY = \"x\"")
            .unwrap_err()
            .contains("NOT_A_KEY"));
        assert!(parse_file("garbage").unwrap_err().contains("line 1"));
    }

    #[test]
    fn the_environment_wins_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tf.conf");
        std::fs::write(&file, "TESTFLINGER_RETENTION_DAYS = \"3\"\n").unwrap();
        let mut merged = read_file(&file).unwrap();
        merged.extend(values(&[("TESTFLINGER_RETENTION_DAYS", "5")]));
        assert_eq!(Config::from_values(&merged).unwrap().retention_days, 5);
        let only_file = read_file(&file).unwrap();
        assert_eq!(Config::from_values(&only_file).unwrap().retention_days, 3);
    }
}
