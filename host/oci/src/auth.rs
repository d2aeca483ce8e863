//! Registry credentials, found where users already keep them: the
//! environment (`FC_REGISTRY_TOKEN`, or `FC_REGISTRY_USERNAME` and
//! `FC_REGISTRY_PASSWORD`), then Docker's `config.json` (`auths`, and the
//! credential helpers it names), else anonymous. A secret is held only to
//! be sent to its registry: never printed, logged or journaled.

use std::path::PathBuf;

use base64::Engine as _;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

use crate::error::{OciError, Result};

/// How to authenticate to one registry. `Debug` and [`Credentials::source`]
/// say where the credentials came from, never what they are.
pub struct Credentials {
    pub(crate) auth: RegistryAuth,
    source: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({})", self.source)
    }
}

impl Credentials {
    /// No credentials.
    pub fn anonymous() -> Credentials {
        Credentials {
            auth: RegistryAuth::Anonymous,
            source: "anonymous".into(),
        }
    }

    /// The credentials for `registry` (`HOST[:PORT]`) from the environment,
    /// else Docker's configuration, else none.
    pub fn for_registry(registry: &str) -> Result<Credentials> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        if let Some(token) = var("FC_REGISTRY_TOKEN") {
            return Ok(Credentials {
                auth: RegistryAuth::Bearer(token),
                source: "FC_REGISTRY_TOKEN".into(),
            });
        }
        match (var("FC_REGISTRY_USERNAME"), var("FC_REGISTRY_PASSWORD")) {
            (Some(user), Some(password)) => {
                return Ok(Credentials {
                    auth: RegistryAuth::Basic(user, password),
                    source: "FC_REGISTRY_USERNAME and FC_REGISTRY_PASSWORD".into(),
                });
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(OciError::Credentials(
                    "set both FC_REGISTRY_USERNAME and FC_REGISTRY_PASSWORD, or neither".into(),
                ));
            }
            (None, None) => {}
        }
        match docker_config_path() {
            Some(path) if path.exists() => from_docker_config(&path, registry),
            _ => Ok(Credentials::anonymous()),
        }
    }

    /// Where the credentials came from, for messages.
    pub fn source(&self) -> &str {
        &self.source
    }
}

fn docker_config_path() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => Some(PathBuf::from(dir).join("config.json")),
        None => {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker/config.json"))
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DockerConfig {
    auths: std::collections::BTreeMap<String, DockerAuth>,
    #[serde(rename = "credHelpers")]
    cred_helpers: std::collections::BTreeMap<String, String>,
    #[serde(rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DockerAuth {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
    #[serde(rename = "registrytoken")]
    registry_token: Option<String>,
}

/// A key of `auths` as Docker writes it (`host`, `https://host`,
/// `https://host/v1/`), reduced to `host[:port]`.
fn auth_key_host(key: &str) -> &str {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    key.split('/').next().unwrap_or(key)
}

fn from_docker_config(path: &std::path::Path, registry: &str) -> Result<Credentials> {
    let damaged = |why: String| {
        OciError::Credentials(format!(
            "`{}` cannot be read ({why}); repair it, or point DOCKER_CONFIG at another directory",
            path.display()
        ))
    };
    let text = std::fs::read(path).map_err(|e| damaged(e.to_string()))?;
    let config: DockerConfig = serde_json::from_slice(&text).map_err(|e| damaged(e.to_string()))?;
    let source = format!("{} ({registry})", path.display());
    if let Some(helper) = config
        .cred_helpers
        .get(registry)
        .or(config.creds_store.as_ref())
        && let Some(auth) = from_helper(helper, registry)?
    {
        return Ok(Credentials {
            auth,
            source: format!("docker-credential-{helper} ({registry})"),
        });
    }
    let Some(entry) = config
        .auths
        .iter()
        .find(|(key, _)| auth_key_host(key) == registry)
        .map(|(_, entry)| entry)
    else {
        return Ok(Credentials::anonymous());
    };
    let auth = if let Some(token) = &entry.registry_token {
        RegistryAuth::Bearer(token.clone())
    } else if let (Some(user), Some(password)) = (&entry.username, &entry.password) {
        RegistryAuth::Basic(user.clone(), password.clone())
    } else if let Some(encoded) = &entry.auth {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| {
                damaged(format!(
                    "`auths.{registry}.auth` is not base64 of USER:PASSWORD"
                ))
            })?;
        let (user, password) = decoded.split_once(':').ok_or_else(|| {
            damaged(format!(
                "`auths.{registry}.auth` is not base64 of USER:PASSWORD"
            ))
        })?;
        RegistryAuth::Basic(user.to_owned(), password.to_owned())
    } else {
        return Ok(Credentials::anonymous());
    };
    Ok(Credentials { auth, source })
}

/// Asks `docker-credential-HELPER get` (Docker's credential helper
/// protocol); `None` when it has nothing for this registry.
fn from_helper(helper: &str, registry: &str) -> Result<Option<RegistryAuth>> {
    use std::io::Write as _;
    let program = format!("docker-credential-{helper}");
    let failed =
        |why: String| OciError::Credentials(format!("`{program} get` for {registry}: {why}"));
    let mut child = match std::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        // A configured helper that is not installed: as Docker does, go on without it.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        other => other.map_err(|e| failed(e.to_string()))?,
    };
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(registry.as_bytes())
            .map_err(|e| failed(e.to_string()))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| failed(e.to_string()))?;
    if !output.status.success() {
        // "credentials not found in native keychain" is the protocol's "none".
        return Ok(None);
    }
    #[derive(Deserialize)]
    struct HelperAnswer {
        #[serde(rename = "Username")]
        username: String,
        #[serde(rename = "Secret")]
        secret: String,
    }
    let answer: HelperAnswer = serde_json::from_slice(&output.stdout)
        .map_err(|_| failed("its answer is not {\"Username\", \"Secret\"} JSON".into()))?;
    Ok(Some(RegistryAuth::Basic(answer.username, answer.secret)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(credentials: &Credentials) -> (String, String) {
        match &credentials.auth {
            RegistryAuth::Basic(u, p) => (u.clone(), p.clone()),
            _ => panic!("not basic: {credentials:?}"),
        }
    }

    #[test]
    fn reads_docker_auths_and_never_shows_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let encoded = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        std::fs::write(
            &path,
            format!(r#"{{"auths": {{"https://reg.example:5000/v1/": {{"auth": "{encoded}"}}, "other.io": {{"username": "bob", "password": "pw"}}}}}}"#),
        )
        .unwrap();
        let c = from_docker_config(&path, "reg.example:5000").unwrap();
        assert_eq!(basic(&c), ("alice".into(), "s3cret".into()));
        assert!(!format!("{c:?} {}", c.source()).contains("s3cret"));
        assert_eq!(
            basic(&from_docker_config(&path, "other.io").unwrap()).0,
            "bob"
        );
        let none = from_docker_config(&path, "third.io").unwrap();
        assert!(matches!(none.auth, RegistryAuth::Anonymous));
    }

    #[test]
    fn a_damaged_config_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, "{not json").unwrap();
        let e = from_docker_config(&path, "r.io").unwrap_err().to_string();
        assert!(
            e.contains("config.json") && e.contains("DOCKER_CONFIG"),
            "{e}"
        );
        std::fs::write(&path, r#"{"auths": {"r.io": {"auth": "bm9jb2xvbg=="}}}"#).unwrap();
        let e = from_docker_config(&path, "r.io").unwrap_err().to_string();
        assert!(e.contains("auths.r.io.auth"), "{e}");
    }

    #[test]
    fn a_missing_credential_helper_means_anonymous() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"credsStore": "femtoclaw-test-absent"}"#).unwrap();
        let c = from_docker_config(&path, "r.io").unwrap();
        assert!(matches!(c.auth, RegistryAuth::Anonymous));
    }
}
