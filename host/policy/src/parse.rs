//! Raw policy → validated [`Policy`]. One function, used both by runs and by
//! `fc-host policy check`.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use toml::Spanned;

use crate::model::*;
use crate::raw::*;
use crate::{PolicyError, Result, units};

/// The only policy format version this build reads.
const VERSION: i64 = 1;

/// Whether the files and directories a policy names are checked.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Files {
    /// They must exist (and mount roots are canonicalised): a policy to run.
    Check,
    /// They are taken as written: a journaled policy read back for replay.
    Ignore,
}

/// Carries what every error needs: the file and its text (for line numbers).
pub(crate) struct Ctx<'a> {
    path: &'a Path,
    dir: PathBuf,
    text: &'a str,
    /// The run's limits, which capability limits start from.
    limits: Limits,
    files: Files,
}

impl Ctx<'_> {
    pub(crate) fn err<T>(
        &self,
        span: std::ops::Range<usize>,
        key: &str,
        message: impl Into<String>,
    ) -> Result<T> {
        let line = self.text[..span.start.min(self.text.len())]
            .matches('\n')
            .count()
            + 1;
        Err(PolicyError::Invalid {
            path: self.path.to_owned(),
            line,
            key: key.to_owned(),
            message: message.into(),
        })
    }

    /// A path from the policy, relative to the policy's directory.
    fn resolve(&self, value: &str) -> PathBuf {
        self.dir.join(value)
    }

    /// Whether `file` must exist as a file and does not.
    fn missing_file(&self, file: &Path) -> bool {
        self.files == Files::Check && !file.is_file()
    }
}

pub(crate) fn parse(path: &Path, text: &str, files: Files) -> Result<Policy> {
    let raw: RawPolicy = toml::from_str(text).map_err(|e| PolicyError::Syntax {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let dir = path.parent().map(Path::to_owned).unwrap_or_default();
    let dir = if dir.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        dir
    };
    let mut cx = Ctx {
        path,
        dir,
        text,
        limits: Limits::default(),
        files,
    };

    if *raw.version.get_ref() != VERSION {
        return cx.err(
            raw.version.span(),
            "version",
            format!(
                "unsupported policy version `{}` (this fc-host reads version {VERSION})",
                raw.version.get_ref()
            ),
        );
    }
    let limits = match raw.limits {
        Some(l) => limits(&cx, l)?,
        None => Limits::default(),
    };
    cx.limits = limits;
    let brain = raw.brain.map(|b| brain(&cx, b)).transpose()?;
    let mut capabilities = BTreeMap::new();
    for (name, cap) in raw.capabilities {
        let grant = capability(&cx, &name, cap)?;
        capabilities.insert(name.into_inner(), grant);
    }
    let on_uncertain = match raw.journal.and_then(|j| j.on_uncertain) {
        None => OnUncertain::Fail,
        Some(v) => match OnUncertain::parse(v.get_ref()) {
            Some(choice) => choice,
            None => {
                return cx.err(
                    v.span(),
                    "journal.on-uncertain",
                    format!("`{}` is not `fail`, `retry` or `skip`", v.get_ref()),
                );
            }
        },
    };
    let on_refusal = match raw.on_refusal {
        None => OnRefusal::Inform,
        Some(v) => match v.get_ref().as_str() {
            "inform" => OnRefusal::Inform,
            "stop" => OnRefusal::Stop,
            other => {
                return cx.err(
                    v.span(),
                    "on-refusal",
                    format!("`{other}` is not `inform` or `stop`"),
                );
            }
        },
    };
    let mut trust = Trust::default();
    if let Some(t) = raw.trust {
        trust.require_signature = t.require_signature.unwrap_or(false);
        for key in &t.keys {
            let file = cx.resolve(key.get_ref());
            if cx.missing_file(&file) {
                return cx.err(
                    key.span(),
                    "trust.keys",
                    format!("key file `{}` does not exist", file.display()),
                );
            }
            trust.keys.push(file);
        }
    }
    let memory = match raw.memory {
        Some(m) => memory(&cx, m)?,
        None => MemoryLimits::default(),
    };
    let approve = crate::parse_rules::approve(&cx, &raw.approve, &capabilities)?;
    let rules = crate::parse_rules::rules(&cx, raw.rules, &capabilities)?;
    Ok(Policy {
        path: path.to_owned(),
        text: text.to_owned(),
        limits,
        brain,
        capabilities,
        on_uncertain,
        on_refusal,
        trust,
        memory,
        approve,
        rules,
    })
}

fn memory(cx: &Ctx, raw: RawMemory) -> Result<MemoryLimits> {
    let mut out = MemoryLimits::default();
    if let Some(v) = &raw.max_value {
        out.max_value = size(cx, v, "memory.max-value")?;
    }
    if let Some(v) = &raw.max_keys {
        out.max_keys = positive(cx, v, "memory.max-keys")?;
    }
    if let Some(v) = &raw.max_written {
        out.max_written = size(cx, v, "memory.max-written")?;
    }
    if let Some(v) = &raw.max_stored {
        out.max_stored = size(cx, v, "memory.max-stored")?;
    }
    Ok(out)
}

fn limits(cx: &Ctx, raw: RawLimits) -> Result<Limits> {
    let mut out = Limits::default();
    if let Some(v) = raw.max_steps {
        out.max_steps = positive(cx, &v, "limits.max-steps")?;
    }
    if let Some(v) = raw.max_tool_calls {
        out.max_tool_calls = positive(cx, &v, "limits.max-tool-calls")?;
    }
    if let Some(v) = raw.max_tokens {
        out.max_tokens = Some(u64::from(positive(cx, &v, "limits.max-tokens")?));
    }
    if let Some(v) = raw.max_log_lines {
        out.max_log_lines = positive(cx, &v, "limits.max-log-lines")?;
    }
    if let Some(v) = &raw.run_timeout {
        out.run_timeout = typed(cx, v, "limits.run-timeout", units::duration)?;
    }
    if let Some(v) = &raw.max_tool_output {
        out.max_tool_output = size(cx, v, "limits.max-tool-output")?;
    }
    if let Some(v) = &raw.max_journal {
        out.max_journal = size(cx, v, "limits.max-journal")?;
    }
    if let Some(v) = &raw.approval_timeout {
        out.approval_timeout = typed(cx, v, "limits.approval-timeout", units::duration)?;
    }
    let overrides = RawComponentLimits {
        memory: raw.memory,
        fuel: raw.fuel,
        call_timeout: raw.call_timeout,
    };
    out.component = component_limits(cx, ComponentLimits::default(), &overrides, "limits")?;
    Ok(out)
}

/// Applies `[…limits]` keys over `base`.
fn component_limits(
    cx: &Ctx,
    base: ComponentLimits,
    raw: &RawComponentLimits,
    table: &str,
) -> Result<ComponentLimits> {
    let mut out = base;
    if let Some(v) = &raw.memory {
        out.memory = size(cx, v, &format!("{table}.memory"))?;
    }
    if let Some(v) = &raw.fuel {
        out.fuel = match u64::try_from(*v.get_ref()) {
            Ok(n) if n > 0 => n,
            _ => {
                return cx.err(
                    v.span(),
                    &format!("{table}.fuel"),
                    format!("must be a positive integer, got `{}`", v.get_ref()),
                );
            }
        };
    }
    if let Some(v) = &raw.call_timeout {
        out.call_timeout = typed(cx, v, &format!("{table}.call-timeout"), units::duration)?;
    }
    Ok(out)
}

pub(crate) fn size(cx: &Ctx, v: &Spanned<RawSize>, key: &str) -> Result<u64> {
    let parsed = match v.get_ref() {
        RawSize::Bytes(n) if *n > 0 => Ok(*n as u64),
        RawSize::Bytes(n) => Err(format!("must be larger than 0, got `{n}`")),
        RawSize::Text(t) => units::size(t),
    };
    parsed.or_else(|m| cx.err(v.span(), key, m))
}

fn typed<T>(
    cx: &Ctx,
    v: &Spanned<String>,
    key: &str,
    parse: fn(&str) -> Result<T, String>,
) -> Result<T> {
    parse(v.get_ref()).or_else(|m| cx.err(v.span(), key, m))
}

/// Limits are never zero (zero would read as "unlimited" somewhere) and never
/// negative.
pub(crate) fn positive(cx: &Ctx, v: &Spanned<i64>, key: &str) -> Result<u32> {
    match u32::try_from(*v.get_ref()) {
        Ok(n) if n > 0 => Ok(n),
        _ => cx.err(
            v.span(),
            key,
            format!("must be between 1 and {}, got `{}`", u32::MAX, v.get_ref()),
        ),
    }
}

fn brain(cx: &Ctx, raw: RawBrain) -> Result<BrainSpec> {
    let protocol = match raw.kind.get_ref().as_str() {
        "scripted" => {
            let Some(script) = raw.script else {
                return cx.err(
                    raw.kind.span(),
                    "brain.script",
                    "a scripted brain needs `script = \"FILE.json\"`",
                );
            };
            let file = cx.resolve(script.get_ref());
            if cx.missing_file(&file) {
                return cx.err(
                    script.span(),
                    "brain.script",
                    format!("script file `{}` does not exist", file.display()),
                );
            }
            return Ok(BrainSpec::Scripted { script: file });
        }
        "openai" => Protocol::Openai,
        "anthropic" => Protocol::Anthropic,
        other => {
            return cx.err(
                raw.kind.span(),
                "brain.kind",
                format!(
                    "unknown brain kind `{other}` (expected `scripted`, `openai` or `anthropic`)"
                ),
            );
        }
    };
    if let Some(script) = &raw.script {
        return cx.err(
            script.span(),
            "brain.script",
            "only a scripted brain has a script",
        );
    }
    let Some(base_url) = raw.base_url else {
        return cx.err(
            raw.kind.span(),
            "brain.base-url",
            "a provider brain needs `base-url`, e.g. `http://127.0.0.1:11434/v1`",
        );
    };
    let origin = base_url_origin(base_url.get_ref());
    if let Err(m) = origin {
        return cx.err(base_url.span(), "brain.base-url", m);
    }
    let Some(model) = raw.model else {
        return cx.err(
            raw.kind.span(),
            "brain.model",
            "a provider brain needs `model`",
        );
    };
    let temperature = match raw.temperature {
        // The Messages API defines no sampling temperature (its published
        // types have none): sending one would be refused.
        Some(t) if protocol == Protocol::Anthropic => {
            return cx.err(
                t.span(),
                "brain.temperature",
                "the Anthropic Messages API takes no `temperature`: remove it",
            );
        }
        Some(t) if !(0.0..=2.0).contains(t.get_ref()) => {
            return cx.err(
                t.span(),
                "brain.temperature",
                format!("must be between 0 and 2, got `{}`", t.get_ref()),
            );
        }
        t => t.map(|t| *t.get_ref()),
    };
    let max_tokens = match raw.max_tokens {
        Some(v) => positive(cx, &v, "brain.max-tokens")?,
        None => 1024,
    };
    let api_key_env = match raw.api_key_env {
        Some(v) if !is_env_name(v.get_ref()) => {
            return cx.err(
                v.span(),
                "brain.api-key-env",
                format!("`{}` is not a variable name", v.get_ref()),
            );
        }
        v => v.map(|v| v.into_inner()),
    };
    let base_url = base_url.into_inner().trim_end_matches('/').to_owned();
    let api_key_fallback = api_key_env.is_none() && protocol == Protocol::Openai;
    Ok(BrainSpec::Provider(ProviderBrain {
        protocol,
        base_url,
        model: model.into_inner(),
        temperature,
        max_tokens,
        api_key_env,
        api_key_fallback,
    }))
}

/// `scheme://host:port` of a URL, parsed by the URL standard (so the origin
/// checked is the one a client connects to); the error says why there is
/// none.
pub(crate) fn origin_of(text: &str) -> Result<String, String> {
    let url = url::Url::parse(text).map_err(|e| format!("`{text}` is not a URL: {e}"))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "`{text}` carries credentials: name the key with `api-key-env` instead"
        ));
    }
    let host = url
        .host_str()
        .ok_or_else(|| format!("`{text}` has no host"))?;
    let port = url
        .port_or_known_default()
        .ok_or_else(|| format!("`{text}` has no port (scheme `{}`)", url.scheme()))?;
    Ok(format!("{}://{host}:{port}", url.scheme()))
}

/// The one origin a base URL names, as a `net` pattern.
pub(crate) fn base_url_origin(text: &str) -> Result<NetPattern, String> {
    units::net_pattern(&origin_of(text)?)
}

fn capability(cx: &Ctx, name: &Spanned<String>, raw: RawCapability) -> Result<CapabilityGrant> {
    let key = format!("capabilities.{}", name.get_ref());
    if !is_identifier(name.get_ref()) {
        return cx.err(
            name.span(),
            &key,
            "capability names use lowercase letters, digits, `_` and `-`, starting with a letter",
        );
    }
    let component = source(cx, name, &key, &raw)?;
    let wasm = !matches!(component, ComponentSource::Mcp(_));

    let tools_key = format!("{key}.tools");
    let mut tools = Vec::new();
    for tool in raw.tools.get_ref() {
        let t = tool.get_ref();
        if t.contains('*') {
            return cx.err(
                tool.span(),
                &tools_key,
                "wildcards are not allowed: list each tool the agent may call by name",
            );
        }
        if !is_identifier(t) {
            return cx.err(tool.span(), &tools_key, format!("`{t}` is not a tool name"));
        }
        if tools.contains(t) {
            return cx.err(
                tool.span(),
                &tools_key,
                format!("tool `{t}` is listed twice"),
            );
        }
        tools.push(t.clone());
    }

    let mounts_key = format!("{key}.mounts");
    let mut mounts: Vec<Mount> = Vec::new();
    for m in &raw.mounts {
        let mount = mount(cx, m.get_ref(), &mounts_key)?;
        if let Some(other) = mounts.iter().find(|o| nested(&o.guest, &mount.guest)) {
            return cx.err(
                m.get_ref().guest.span(),
                &mounts_key,
                format!("guest path `{}` overlaps the mount at `{}`: each guest path may be granted once", mount.guest, other.guest),
            );
        }
        mounts.push(mount);
    }

    let net_key = format!("{key}.net");
    let mut net: Vec<NetPattern> = Vec::new();
    for pattern in &raw.net {
        let p = typed(cx, pattern, &net_key, units::net_pattern)?;
        if net.contains(&p) {
            return cx.err(
                pattern.span(),
                &net_key,
                format!("`{}` is listed twice", pattern.get_ref()),
            );
        }
        net.push(p);
    }

    let env_key = format!("{key}.env");
    let mut env: Vec<String> = Vec::new();
    for var in &raw.env {
        if !is_env_name(var.get_ref()) || env.contains(var.get_ref()) {
            return cx.err(
                var.span(),
                &env_key,
                format!(
                    "`{}` is not a variable name, or is listed twice",
                    var.get_ref()
                ),
            );
        }
        env.push(var.get_ref().clone());
    }

    let secrets_key = format!("{key}.secrets");
    let mut secrets = BTreeMap::new();
    for (name, source) in &raw.secrets {
        if !is_env_name(name.get_ref()) || env.contains(name.get_ref()) {
            return cx.err(
                name.span(),
                &secrets_key,
                format!(
                    "`{}` is not a variable name, or is also in `env`",
                    name.get_ref()
                ),
            );
        }
        let source = secret_source(cx, source, &secrets_key, name.get_ref())?;
        secrets.insert(name.get_ref().clone(), source);
    }

    let calls_key = format!("{key}.max-calls");
    let mut max_calls = BTreeMap::new();
    for (tool, n) in &raw.max_calls {
        if !tools.contains(tool.get_ref()) {
            return cx.err(
                tool.span(),
                &calls_key,
                format!("`{}` is not in `{tools_key}`", tool.get_ref()),
            );
        }
        max_calls.insert(tool.get_ref().clone(), positive(cx, n, &calls_key)?);
    }

    let rates = match &raw.rates {
        Some(r) => crate::parse_rules::rates(cx, r, &format!("{key}.rates"))?,
        None => Rates::default(),
    };
    let mut tool_rates = BTreeMap::new();
    for (tool, r) in &raw.tool_rates {
        let rates_key = format!("{key}.tool-rates.{}", tool.get_ref());
        if !tools.contains(tool.get_ref()) {
            return cx.err(
                tool.span(),
                &rates_key,
                format!("`{}` is not in `{tools_key}`", tool.get_ref()),
            );
        }
        tool_rates.insert(
            tool.get_ref().clone(),
            crate::parse_rules::rates(cx, r, &rates_key)?,
        );
    }

    let limits = match &raw.limits {
        Some(l) => {
            if !wasm
                && let Some(span) = l
                    .memory
                    .as_ref()
                    .map(|v| v.span())
                    .or(l.fuel.as_ref().map(|v| v.span()))
            {
                return cx.err(
                    span,
                    &format!("{key}.limits"),
                    "an MCP server is not a component: `memory` and `fuel` do not apply (its calls are bounded by `call-timeout`)",
                );
            }
            component_limits(cx, cx.limits.component, l, &format!("{key}.limits"))?
        }
        None => cx.limits.component,
    };
    if !wasm {
        let not_wasm = |what: &str| format!("an MCP server is not a component: {what}");
        if let Some(m) = raw.mounts.first() {
            return cx.err(m.span(), &mounts_key, not_wasm("it gets no mounts (a stdio server sees the host's files as its user does, from `cwd`)"));
        }
        if let Some(n) = raw.net.first() {
            return cx.err(n.span(), &net_key, not_wasm("the `mcp` URL's origin is the one destination of an HTTP server, and a stdio server's own network is not gated: remove `net`"));
        }
    }
    if let ComponentSource::Mcp(McpServer::Http { .. }) = component {
        let first = raw.env.first().map(|v| (v.span(), &env_key)).or(raw
            .secrets
            .keys()
            .next()
            .map(|k| (k.span(), &secrets_key)));
        if let Some((span, k)) = first {
            return cx.err(
                span,
                k,
                "an HTTP MCP server gets no environment: send values with `headers` or `bearer`",
            );
        }
    }
    Ok(CapabilityGrant {
        component,
        tools,
        mounts,
        net,
        env,
        secrets,
        max_calls,
        rates,
        tool_rates,
        limits,
    })
}

/// `{ env = "VAR" }` or `{ file = "PATH" }`.
fn secret_source(
    cx: &Ctx,
    source: &Spanned<RawSecret>,
    key: &str,
    what: &str,
) -> Result<SecretSource> {
    match (&source.get_ref().env, &source.get_ref().file) {
        (Some(var), None) if is_env_name(var) => Ok(SecretSource::Env(var.clone())),
        (None, Some(file)) => Ok(SecretSource::File(cx.resolve(file))),
        _ => cx.err(
            source.span(),
            key,
            format!("secret `{what}` needs exactly one of `env = \"VAR\"` or `file = \"PATH\"`"),
        ),
    }
}

/// Headers the client side of MCP's Streamable HTTP sets itself, or that
/// would change the request's framing or destination.
const RESERVED_HEADERS: &[&str] = &[
    "accept",
    "connection",
    "content-length",
    "content-type",
    "host",
    "last-event-id",
    "mcp-protocol-version",
    "mcp-session-id",
    "transfer-encoding",
];

/// Where a capability's code comes from: exactly one of `component`,
/// `mcp` and `command` (with `unsandboxed = true`), and only the keys that
/// belong to it.
fn source(
    cx: &Ctx,
    name: &Spanned<String>,
    key: &str,
    raw: &RawCapability,
) -> Result<ComponentSource> {
    let given = [
        raw.component.as_ref().map(|c| c.span()),
        raw.mcp.as_ref().map(|c| c.span()),
        raw.command.as_ref().map(|c| c.span()),
    ];
    if given.iter().flatten().count() != 1 {
        let span = given
            .iter()
            .flatten()
            .nth(1)
            .cloned()
            .unwrap_or(name.span());
        return cx.err(
            span,
            key,
            "needs exactly one of `component = \"builtin:NAME\" or FILE.wasm`, `mcp = \"URL\"` (an MCP server over HTTP) or `command = [...]` (a stdio MCP server, with `unsandboxed = true`)",
        );
    }
    let only = |present: Option<std::ops::Range<usize>>, field: &str, belongs: &str| match present {
        Some(span) => cx.err(
            span,
            &format!("{key}.{field}"),
            format!("only {belongs} has `{field}`"),
        ),
        None => Ok(()),
    };
    let headers_span = raw.headers.keys().next().map(|k| k.span());
    if raw.command.is_none() {
        only(
            raw.unsandboxed.as_ref().map(|v| v.span()),
            "unsandboxed",
            "a stdio MCP server (`command`)",
        )?;
        only(
            raw.cwd.as_ref().map(|v| v.span()),
            "cwd",
            "a stdio MCP server (`command`)",
        )?;
    }
    if raw.mcp.is_none() {
        only(headers_span, "headers", "an HTTP MCP server (`mcp`)")?;
        only(
            raw.bearer.as_ref().map(|v| v.span()),
            "bearer",
            "an HTTP MCP server (`mcp`)",
        )?;
    }
    if let Some(c) = &raw.component {
        return component(cx, c, &format!("{key}.component"));
    }
    if let Some(url) = &raw.mcp {
        let url_key = format!("{key}.mcp");
        let origin = match base_url_origin(url.get_ref()) {
            Ok(o) => o,
            Err(m) => return cx.err(url.span(), &url_key, m),
        };
        let headers_key = format!("{key}.headers");
        let mut headers = BTreeMap::new();
        for (header, value) in &raw.headers {
            let lower = header.get_ref().to_ascii_lowercase();
            let token = !lower.is_empty()
                && lower
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token {
                return cx.err(
                    header.span(),
                    &headers_key,
                    format!("`{}` is not a header name", header.get_ref()),
                );
            }
            if RESERVED_HEADERS.contains(&lower.as_str())
                || (lower == "authorization" && raw.bearer.is_some())
            {
                return cx.err(header.span(), &headers_key, format!("`{lower}` is set by the MCP client itself (or by `bearer`): it cannot be set here"));
            }
            let source = match value.get_ref() {
                RawHeader::Value(v)
                    if v.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)) =>
                {
                    HeaderSource::Value(v.clone())
                }
                RawHeader::Value(_) => {
                    return cx.err(
                        value.span(),
                        &headers_key,
                        format!("the value of `{lower}` must be visible ASCII"),
                    );
                }
                RawHeader::Secret(secret) => {
                    let spanned = Spanned::new(value.span(), secret.clone());
                    HeaderSource::Secret(secret_source(cx, &spanned, &headers_key, &lower)?)
                }
            };
            if headers.insert(lower.clone(), source).is_some() {
                return cx.err(
                    header.span(),
                    &headers_key,
                    format!("`{lower}` is listed twice"),
                );
            }
        }
        if let Some(bearer) = &raw.bearer {
            let source = secret_source(cx, bearer, &format!("{key}.bearer"), "bearer")?;
            headers.insert("authorization".to_owned(), HeaderSource::Bearer(source));
        }
        return Ok(ComponentSource::Mcp(McpServer::Http {
            url: url.get_ref().clone(),
            origin,
            headers,
        }));
    }
    let command = raw
        .command
        .as_ref()
        .expect("invariant: exactly one source is given");
    let command_key = format!("{key}.command");
    if raw.unsandboxed.as_ref().is_none_or(|u| !*u.get_ref()) {
        return cx.err(
            command.span(),
            &format!("{key}.unsandboxed"),
            "a stdio MCP server is a host process, outside the WebAssembly sandbox: write `unsandboxed = true` to accept that (docs/mcp.md says what it does and does not protect)",
        );
    }
    let argv: Vec<String> = command
        .get_ref()
        .iter()
        .map(|a| a.get_ref().clone())
        .collect();
    if argv.first().is_none_or(|p| p.is_empty()) || argv.iter().any(|a| a.contains('\0')) {
        return cx.err(command.span(), &command_key, "needs a program and its arguments, e.g. `[\"mcp-server-time\"]`, none empty for the program and none with NUL");
    }
    let Some(cwd) = &raw.cwd else {
        return cx.err(
            command.span(),
            &format!("{key}.cwd"),
            "a stdio MCP server needs `cwd`, the directory it runs in (relative to the policy's directory)",
        );
    };
    let dir = cx.resolve(cwd.get_ref());
    let dir = match cx.files {
        Files::Ignore => dir,
        Files::Check => match dir.canonicalize() {
            Ok(d) if d.is_dir() => d,
            _ => {
                return cx.err(
                    cwd.span(),
                    &format!("{key}.cwd"),
                    format!("`{}` is not a directory", dir.display()),
                );
            }
        },
    };
    Ok(ComponentSource::Mcp(McpServer::Stdio {
        command: argv,
        cwd: dir,
    }))
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn component(cx: &Ctx, raw: &Spanned<String>, key: &str) -> Result<ComponentSource> {
    if let Some(name) = raw.get_ref().strip_prefix("bundle:") {
        return Ok(ComponentSource::Bundle(name.to_owned()));
    }
    if let Some(name) = raw.get_ref().strip_prefix("builtin:") {
        if !BUILTIN_CAPABILITIES.contains(&name) {
            return cx.err(
                raw.span(),
                key,
                format!(
                    "unknown built-in `{name}` (built-ins: {})",
                    BUILTIN_CAPABILITIES.join(", ")
                ),
            );
        }
        return Ok(ComponentSource::Builtin(name.to_owned()));
    }
    let file = cx.resolve(raw.get_ref());
    if cx.missing_file(&file) {
        return cx.err(
            raw.span(),
            key,
            format!("component file `{}` does not exist", file.display()),
        );
    }
    Ok(ComponentSource::File(file))
}

fn mount(cx: &Ctx, raw: &RawMount, key: &str) -> Result<Mount> {
    let guest = raw.guest.get_ref();
    let Some(guest) = normal_guest_path(guest) else {
        return cx.err(
            raw.guest.span(),
            key,
            format!("guest path `{guest}` must be absolute and normalised (no `.`, `..` or `//`)"),
        );
    };
    let mode = match raw.mode.get_ref().as_str() {
        "ro" => MountMode::ReadOnly,
        "rw" => MountMode::ReadWrite,
        other => {
            return cx.err(
                raw.mode.span(),
                key,
                format!("mode `{other}` is not `ro` or `rw`"),
            );
        }
    };
    let host = cx.resolve(raw.host.get_ref());
    if cx.files == Files::Ignore {
        return Ok(Mount { guest, host, mode });
    }
    // The grant root itself must be a real directory: a symlink could be
    // swapped later to point anywhere.
    match std::fs::symlink_metadata(&host) {
        Ok(meta) if meta.file_type().is_symlink() => {
            return cx.err(
                raw.host.span(),
                key,
                format!(
                    "mount root `{}` is a symlink: name the real directory",
                    host.display()
                ),
            );
        }
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return cx.err(
                raw.host.span(),
                key,
                format!("mount root `{}` is not a directory", host.display()),
            );
        }
        Err(_) => {
            return cx.err(
                raw.host.span(),
                key,
                format!("mount directory `{}` does not exist", host.display()),
            );
        }
    }
    let host = host.canonicalize().or_else(|e| {
        cx.err(
            raw.host.span(),
            key,
            format!("cannot resolve `{}`: {e}", host.display()),
        )
    })?;
    Ok(Mount { guest, host, mode })
}

/// `/a/b` stays `/a/b`; a trailing `/` is dropped; anything relative or with
/// `.`/`..`/empty components is refused.
fn normal_guest_path(p: &str) -> Option<String> {
    if !p.starts_with('/') || p.contains("//") {
        return None;
    }
    let trimmed = if p.len() > 1 {
        p.trim_end_matches('/')
    } else {
        p
    };
    let ok = Path::new(trimmed)
        .components()
        .all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
        && !trimmed.split('/').any(|s| s == "." || s == "..");
    ok.then(|| trimmed.to_owned())
}

/// Whether one guest path is the other or lies inside it.
fn nested(a: &str, b: &str) -> bool {
    let inside = |outer: &str, inner: &str| {
        inner == outer
            || outer == "/"
            || inner
                .strip_prefix(outer)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    inside(a, b) || inside(b, a)
}

pub(crate) fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in(dir: &Path, text: &str) -> Result<Policy> {
        parse(&dir.join("policy.toml"), text, Files::Check)
    }

    #[test]
    fn base_urls_are_parsed_by_the_url_standard() {
        let origin = |u: &str| base_url_origin(u).map(|p| p.to_string());
        assert_eq!(
            origin("http://127.0.0.1:11434/v1").unwrap(),
            "http://127.0.0.1:11434"
        );
        assert_eq!(
            origin("https://API.example.com/v1?x=1#f").unwrap(),
            "https://api.example.com:443"
        );
        assert_eq!(origin("http://[::1]:8080/v1").unwrap(), "http://[::1]:8080");
        // What hand-splitting on `://` got wrong: the host is after the
        // credentials, and a backslash ends the authority.
        assert!(
            origin("http://user:pw@good.example@evil.example/")
                .unwrap_err()
                .contains("credentials")
        );
        assert_eq!(
            origin("https://good.example\\@evil.example/").unwrap(),
            "https://good.example:443"
        );
        assert!(origin("ftp://example.com/").is_err());
        assert!(origin("not a url").is_err());
    }

    #[test]
    fn a_recorded_policy_parses_without_its_files() {
        let text = "version = 1\n[brain]\nkind = \"scripted\"\nscript = \"gone.json\"\n[trust]\nkeys = [\"gone.pub\"]\n[capabilities.fs]\ncomponent = \"gone.wasm\"\ntools = [\"read_file\"]\nmounts = [{ guest = \"/data\", host = \"gone\", mode = \"ro\" }]\n[memory]\nmax-keys = 3\n";
        let dir = Path::new("/nowhere");
        let err = parse(&dir.join("p.toml"), text, Files::Check).unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        let p = parse(&dir.join("p.toml"), text, Files::Ignore).unwrap();
        assert_eq!(p.capabilities["fs"].mounts[0].host, dir.join("gone"));
        assert_eq!(p.memory.max_keys, 3);
        // Values are still checked.
        let bad = text.replace("max-keys = 3", "max-keys = 0");
        assert!(parse(&dir.join("p.toml"), &bad, Files::Ignore).is_err());
    }

    #[test]
    fn the_default_policy_grants_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = parse_in(dir.path(), "version = 1\n").unwrap();
        assert!(p.capabilities.is_empty());
        assert_eq!(p.brain, None);
        assert_eq!(p.limits, Limits::default());
    }

    #[test]
    fn mounts_are_resolved_against_the_policy_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("data")).unwrap();
        let text = "version = 1\n[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = [\"read_file\"]\nmounts = [{ guest = \"/data/\", host = \"data\", mode = \"rw\" }]\n";
        let p = parse_in(dir.path(), text).unwrap();
        let m = &p.capabilities["fs"].mounts[0];
        assert_eq!(m.guest, "/data");
        assert_eq!(m.host, dir.path().join("data").canonicalize().unwrap());
        assert_eq!(m.mode, MountMode::ReadWrite);
    }

    #[test]
    fn overlapping_guest_paths_and_symlink_roots_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("a")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("a"), dir.path().join("link")).unwrap();
        let cap = |mounts: &str| {
            format!(
                "version = 1\n[capabilities.fs]\ncomponent = \"builtin:fs\"\ntools = []\nmounts = [{mounts}]\n"
            )
        };
        for (mounts, expect) in [
            (
                r#"{ guest = "/d", host = "a", mode = "ro" }, { guest = "/d", host = "a", mode = "rw" }"#,
                "overlaps",
            ),
            (
                r#"{ guest = "/d", host = "a", mode = "ro" }, { guest = "/d/sub", host = "a", mode = "rw" }"#,
                "overlaps",
            ),
            (
                r#"{ guest = "/", host = "a", mode = "ro" }, { guest = "/x", host = "a", mode = "ro" }"#,
                "overlaps",
            ),
            (
                r#"{ guest = "/d", host = "link", mode = "ro" }"#,
                "is a symlink",
            ),
        ] {
            let err = parse_in(dir.path(), &cap(mounts)).unwrap_err().to_string();
            assert!(err.contains(expect), "{mounts}: {err}");
            assert!(err.contains("line 5"), "{err}");
        }
        // Siblings that share a prefix are not nested.
        let ok = cap(
            r#"{ guest = "/d", host = "a", mode = "ro" }, { guest = "/dd", host = "a", mode = "ro" }"#,
        );
        assert!(parse_in(dir.path(), &ok).is_ok());
    }

    #[test]
    fn guest_paths_are_normalised_or_refused() {
        assert_eq!(normal_guest_path("/a/b/").as_deref(), Some("/a/b"));
        assert_eq!(normal_guest_path("/").as_deref(), Some("/"));
        for bad in ["a", "/a/../b", "/a/./b", "//a", "", "/a//b"] {
            assert_eq!(normal_guest_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn errors_name_the_line_of_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let err = parse_in(
            dir.path(),
            "version = 1\n\n[limits]\nmax-steps = 1\nmax-tool-calls = 0\n",
        )
        .unwrap_err();
        match err {
            PolicyError::Invalid { line, key, .. } => {
                assert_eq!((line, key.as_str()), (5, "limits.max-tool-calls"))
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn mcp_servers_are_parsed_with_their_headers_and_stdio_needs_unsandboxed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("work")).unwrap();
        let p = parse_in(
            dir.path(),
            r#"version = 1
[capabilities.gh]
mcp = "https://mcp.example.com/mcp"
tools = ["create_issue"]
headers = { "X-Tenant" = "acme", "X-Key" = { env = "KEY" } }
bearer = { env = "TOKEN" }
[capabilities.time]
command = ["mcp-server-time", "--local-timezone", "UTC"]
unsandboxed = true
cwd = "work"
env = ["TZ"]
tools = ["get_current_time"]
"#,
        )
        .unwrap();
        let ComponentSource::Mcp(McpServer::Http {
            origin, headers, ..
        }) = &p.capabilities["gh"].component
        else {
            panic!("{:?}", p.capabilities["gh"])
        };
        assert_eq!(origin.to_string(), "https://mcp.example.com:443");
        assert_eq!(headers["x-tenant"], HeaderSource::Value("acme".into()));
        assert_eq!(
            headers["x-key"],
            HeaderSource::Secret(SecretSource::Env("KEY".into()))
        );
        assert_eq!(
            headers["authorization"],
            HeaderSource::Bearer(SecretSource::Env("TOKEN".into()))
        );
        assert!(!p.capabilities["gh"].unsandboxed());
        let time = &p.capabilities["time"];
        assert!(time.unsandboxed());
        let ComponentSource::Mcp(McpServer::Stdio { command, cwd }) = &time.component else {
            panic!("{time:?}")
        };
        assert_eq!(command[0], "mcp-server-time");
        assert!(cwd.is_absolute() && cwd.ends_with("work"));
    }

    #[test]
    fn mcp_capabilities_refuse_what_does_not_apply_to_them() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("work")).unwrap();
        let http = "[capabilities.x]\nmcp = \"http://127.0.0.1:1/mcp\"\ntools = []\n";
        let stdio = "[capabilities.x]\ncommand = [\"srv\"]\ncwd = \"work\"\ntools = []\n";
        for (body, key, says) in [
            (
                stdio.to_string(),
                "capabilities.x.unsandboxed",
                "unsandboxed = true",
            ),
            (
                format!("{stdio}unsandboxed = false\n"),
                "capabilities.x.unsandboxed",
                "outside",
            ),
            (
                "[capabilities.x]\ncommand = [\"srv\"]\nunsandboxed = true\ntools = []\n".into(),
                "capabilities.x.cwd",
                "needs `cwd`",
            ),
            (
                format!("{http}component = \"builtin:fs\"\n"),
                "capabilities.x",
                "exactly one",
            ),
            (
                "[capabilities.x]\ntools = []\n".into(),
                "capabilities.x",
                "exactly one",
            ),
            (
                format!("{http}unsandboxed = true\n"),
                "capabilities.x.unsandboxed",
                "only a stdio",
            ),
            (
                format!("{stdio}unsandboxed = true\nbearer = {{ env = \"T\" }}\n"),
                "capabilities.x.bearer",
                "only an HTTP",
            ),
            (
                format!("{http}mounts = [{{ guest = \"/d\", host = \"work\", mode = \"ro\" }}]\n"),
                "capabilities.x.mounts",
                "not a component",
            ),
            (
                format!("{http}net = [\"https://a.example\"]\n"),
                "capabilities.x.net",
                "not a component",
            ),
            (
                format!("{http}env = [\"HOME\"]\n"),
                "capabilities.x.env",
                "no environment",
            ),
            (
                format!("{http}limits = {{ fuel = 5 }}\n"),
                "capabilities.x.limits",
                "`fuel` do not apply",
            ),
            (
                format!("{http}headers = {{ \"Mcp-Session-Id\" = \"s\" }}\n"),
                "capabilities.x.headers",
                "set by the MCP client",
            ),
            (
                format!("{http}headers = {{ \"bad name\" = \"s\" }}\n"),
                "capabilities.x.headers",
                "not a header name",
            ),
            (
                "[capabilities.x]\nmcp = \"http://u:p@127.0.0.1:1/mcp\"\ntools = []\n".into(),
                "capabilities.x.mcp",
                "credentials",
            ),
        ] {
            match parse_in(dir.path(), &format!("version = 1\n{body}")) {
                Err(PolicyError::Invalid {
                    key: k, message, ..
                }) => {
                    assert_eq!(k, key, "{body}: {message}");
                    assert!(message.contains(says), "{body}: {message}");
                }
                other => panic!("{body}: {other:?}"),
            }
        }
    }
}
