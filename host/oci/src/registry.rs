//! Pushing a bundle as an OCI artifact and pulling it back, checking every
//! byte against its digest before anything is kept.

use std::time::Duration;

use futures_util::StreamExt as _;
use oci_client::errors::OciDistributionError;
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest as _, Sha256};

use crate::auth::Credentials;
use crate::error::{OciError, Result};
use crate::reference::{Reference, valid_digest};

/// The media type of a bundle: the manifest's `artifactType` and its one layer.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.femtoclaw.bundle.v1";
/// The media type of the config blob: `{"format","name","version"}`.
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.femtoclaw.bundle.config.v1+json";
const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Largest bundle pulled (the same cap as a bundle file).
pub const MAX_BUNDLE: u64 = 512 << 20;

/// A client for one registry, with its credentials.
pub struct Registry {
    client: oci_client::Client,
    credentials: Credentials,
}

/// What a push left in the registry.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The manifest's digest: `oci://…@DIGEST` pulls exactly these bytes.
    pub reference: Reference,
    /// The bundle layer's size in bytes.
    pub size: u64,
}

/// A bundle pulled and checked against its digests (not yet its
/// signatures: that is the policy's call).
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The reference with the manifest digest it resolved to.
    pub reference: Reference,
    /// The manifest, byte for byte as its digest covers it.
    pub manifest: Vec<u8>,
    /// The bundle file's bytes.
    pub bundle: Vec<u8>,
}

/// `sha256:HEX` of `bytes`.
pub(crate) fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl Registry {
    /// A client for `reference`'s registry: HTTPS, or plain HTTP for a
    /// registry on a loopback address.
    pub fn new(reference: &Reference, credentials: Credentials) -> Registry {
        // reqwest is built without a default crypto provider; the host's is ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let protocol = if reference.is_loopback() {
            oci_client::client::ClientProtocol::Http
        } else {
            oci_client::client::ClientProtocol::Https
        };
        let config = oci_client::client::ClientConfig {
            protocol,
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            platform_resolver: None,
            user_agent: concat!("femtoclaw/", env!("CARGO_PKG_VERSION")),
            ..Default::default()
        };
        Registry {
            client: oci_client::Client::new(config),
            credentials,
        }
    }

    /// Pushes `bundle` (a bundle file's bytes, named `name` at `version`)
    /// to `reference`'s tag. The same bundle always gives the same digest.
    pub async fn push(
        &self,
        reference: &Reference,
        bundle: &[u8],
        name: &str,
        version: &str,
    ) -> Result<Pushed> {
        if reference.digest.is_some() {
            return Err(OciError::Reference {
                reference: reference.to_string(),
                reason: "a push names a tag, not a digest (the registry computes the digest)"
                    .into(),
            });
        }
        let target = reference.client_reference();
        let registry_error = |e| registry_error(reference, e);
        let config = serde_json::to_vec(
            &json!({ "format": "femtoclaw-bundle/1", "name": name, "version": version }),
        )
        .expect("invariant: JSON values serialise");
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "artifactType": BUNDLE_MEDIA_TYPE,
            "config": { "mediaType": CONFIG_MEDIA_TYPE, "digest": digest_of(&config), "size": config.len() },
            "layers": [{
                "mediaType": BUNDLE_MEDIA_TYPE,
                "digest": digest_of(bundle),
                "size": bundle.len(),
                "annotations": { "org.opencontainers.image.title": format!("{name}-{version}.fcb") },
            }],
            "annotations": {
                "org.opencontainers.image.title": name,
                "org.opencontainers.image.version": version,
            },
        }))
        .expect("invariant: JSON values serialise");
        self.client
            .store_auth_if_needed(target.resolve_registry(), &self.credentials.auth)
            .await;
        for blob in [bundle, &config[..]] {
            let digest = digest_of(blob);
            if !self
                .client
                .blob_exists(&target, &digest)
                .await
                .map_err(registry_error)?
            {
                self.client
                    .push_blob(&target, blob.to_vec(), &digest)
                    .await
                    .map_err(registry_error)?;
            }
        }
        let digest = digest_of(&manifest);
        self.client
            .push_manifest_raw(
                &target,
                manifest,
                http::HeaderValue::from_static(MANIFEST_MEDIA_TYPE),
            )
            .await
            .map_err(registry_error)?;
        Ok(Pushed {
            reference: reference.at(&digest),
            size: bundle.len() as u64,
        })
    }

    /// Pulls the bundle at `reference`. A tag is resolved to its manifest's
    /// digest once; the manifest and the bundle are checked against their
    /// digests, kinds and sizes before they are returned.
    pub async fn pull(&self, reference: &Reference) -> Result<Pulled> {
        let target = reference.client_reference();
        let tampered = |reason: String| OciError::Tampered {
            reference: reference.to_string(),
            reason,
        };
        let (manifest, _) = self
            .client
            .pull_manifest_raw(&target, &self.credentials.auth, &[MANIFEST_MEDIA_TYPE])
            .await
            .map_err(|e| registry_error(reference, e))?;
        let digest = digest_of(&manifest);
        if let Some(wanted) = &reference.digest
            && *wanted != digest
        {
            return Err(tampered(format!(
                "the registry served a manifest whose digest is {digest}, not the one asked for"
            )));
        }
        let layer = bundle_layer(&manifest).map_err(tampered)?;
        let pinned = reference.at(&digest);
        let mut stream = self
            .client
            .pull_blob_stream(&pinned.client_reference(), layer.digest.as_str())
            .await
            .map_err(|e| registry_error(reference, e))?;
        let mut bundle = Vec::with_capacity(layer.size.min(16 << 20) as usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| match e.get_ref() {
                // The client's own digest check, at the stream's end.
                Some(inner) if inner.to_string().contains("Invalid digest") => tampered(format!(
                    "the bundle layer does not match its digest {}",
                    layer.digest
                )),
                _ => registry_error(reference, OciDistributionError::IoError(e)),
            })?;
            if bundle.len() as u64 + chunk.len() as u64 > layer.size {
                return Err(tampered(format!(
                    "the registry sent more than the {} bytes the manifest gives the bundle layer",
                    layer.size
                )));
            }
            bundle.extend_from_slice(&chunk);
        }
        if bundle.len() as u64 != layer.size || digest_of(&bundle) != layer.digest {
            return Err(tampered(format!(
                "the bundle layer does not match its digest {} and size {}",
                layer.digest, layer.size
            )));
        }
        Ok(Pulled {
            reference: pinned,
            manifest: manifest.to_vec(),
            bundle,
        })
    }
}

/// The manifest fields a pull relies on.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    schema_version: u32,
    media_type: Option<String>,
    config: Descriptor,
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    media_type: String,
    pub(crate) digest: String,
    pub(crate) size: u64,
}

/// The one bundle layer of a manifest of ours, or why it is not one.
pub(crate) fn bundle_layer(manifest: &[u8]) -> std::result::Result<Descriptor, String> {
    let m: Manifest = serde_json::from_slice(manifest)
        .map_err(|e| format!("its manifest is not an OCI image manifest ({e})"))?;
    if m.schema_version != 2 || m.media_type.as_deref() != Some(MANIFEST_MEDIA_TYPE) {
        return Err(format!(
            "its manifest is not an OCI image manifest ({MANIFEST_MEDIA_TYPE}, schema 2)"
        ));
    }
    if m.config.media_type != CONFIG_MEDIA_TYPE {
        return Err(format!(
            "it is not a FemtoClaw bundle (its config is `{}`, not `{CONFIG_MEDIA_TYPE}`)",
            m.config.media_type
        ));
    }
    let [layer] = <[Descriptor; 1]>::try_from(m.layers)
        .map_err(|layers| format!("a bundle has one layer, this manifest has {}", layers.len()))?;
    if layer.media_type != BUNDLE_MEDIA_TYPE {
        return Err(format!(
            "its layer is `{}`, not `{BUNDLE_MEDIA_TYPE}`",
            layer.media_type
        ));
    }
    if !valid_digest(&layer.digest) {
        return Err(format!(
            "its layer's digest `{}` is not sha256:HEX",
            layer.digest
        ));
    }
    if layer.size > MAX_BUNDLE {
        return Err(format!(
            "its layer of {} bytes exceeds the cap of {MAX_BUNDLE}",
            layer.size
        ));
    }
    Ok(layer)
}

/// What to do when a registry refuses the credentials.
const LOG_IN: &str = "set FC_REGISTRY_TOKEN, or FC_REGISTRY_USERNAME and FC_REGISTRY_PASSWORD, or log in with `docker login` (fc-host reads its config.json and credential helpers)";

fn registry_error(reference: &Reference, e: OciDistributionError) -> OciError {
    let message = match &e {
        OciDistributionError::DigestError(_) => {
            return OciError::Tampered {
                reference: reference.to_string(),
                reason: format!("the registry's bytes do not match their digest ({e})"),
            };
        }
        OciDistributionError::ImageManifestNotFoundError(_) => {
            format!("no manifest at {reference}: push it first, or check the tag")
        }
        OciDistributionError::RegistryError { envelope, .. }
            if envelope.errors.iter().any(|e| {
                use oci_client::errors::OciErrorCode::{ManifestUnknown, NameUnknown};
                matches!(e.code, ManifestUnknown | NameUnknown)
            }) =>
        {
            format!(
                "no manifest at {reference} ({envelope}): push it first, or check the repository and tag"
            )
        }
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => format!("{e}: {LOG_IN}"),
        OciDistributionError::RequestError(r)
            if r.status().is_some_and(|s| s == 401 || s == 403) =>
        {
            format!("{r}: {LOG_IN}")
        }
        OciDistributionError::RequestError(r) => {
            let mut text = r.to_string();
            let mut source = std::error::Error::source(r);
            while let Some(s) = source {
                text = format!("{text}: {s}");
                source = s.source();
            }
            text
        }
        _ => e.to_string(),
    };
    OciError::Registry {
        registry: reference.registry.clone(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(config: &str, layers: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "schemaVersion": 2, "mediaType": MANIFEST_MEDIA_TYPE,
            "config": { "mediaType": config, "digest": digest_of(b"{}"), "size": 2 },
            "layers": layers,
        }))
        .unwrap()
    }

    fn layer(media_type: &str, size: u64) -> serde_json::Value {
        json!({ "mediaType": media_type, "digest": digest_of(b"x"), "size": size })
    }

    #[test]
    fn accepts_only_a_bundle_manifest() {
        let good = manifest(CONFIG_MEDIA_TYPE, json!([layer(BUNDLE_MEDIA_TYPE, 1)]));
        assert_eq!(bundle_layer(&good).unwrap().size, 1);
        for (bad, why) in [
            (
                manifest(
                    "application/vnd.oci.image.config.v1+json",
                    json!([layer(BUNDLE_MEDIA_TYPE, 1)]),
                ),
                "not a FemtoClaw bundle",
            ),
            (manifest(CONFIG_MEDIA_TYPE, json!([])), "has 0"),
            (
                manifest(
                    CONFIG_MEDIA_TYPE,
                    json!([layer(BUNDLE_MEDIA_TYPE, 1), layer(BUNDLE_MEDIA_TYPE, 1)]),
                ),
                "has 2",
            ),
            (
                manifest(
                    CONFIG_MEDIA_TYPE,
                    json!([layer("application/vnd.oci.image.layer.v1.tar", 1)]),
                ),
                "its layer is",
            ),
            (
                manifest(
                    CONFIG_MEDIA_TYPE,
                    json!([layer(BUNDLE_MEDIA_TYPE, MAX_BUNDLE + 1)]),
                ),
                "exceeds the cap",
            ),
            (b"[]".to_vec(), "not an OCI image manifest"),
        ] {
            let e = bundle_layer(&bad).err().unwrap();
            assert!(e.contains(why), "{e}");
        }
    }
}
