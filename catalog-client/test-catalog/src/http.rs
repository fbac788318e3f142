//! HTTP front of the test catalog: routing for `/authn`, `/ermrest`, `/hatrac` and `/_test`,
//! content negotiation, auth, fault injection and the request log.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use bytes::Bytes;
use deriva_bag_core::csv;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Map, Value as Json};
use tokio::sync::{oneshot, Notify};

use super::store::{ApiError, ApiResult, Identity, InsertOptions, UploadJob};
use super::urlpath::parse_data_path;
use super::{Fault, FaultMode, LoggedRequest, State};

type Resp = Response<Full<Bytes>>;

/// Characters kept verbatim in a Hatrac path segment.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes each segment of a decoded Hatrac path (`/hatrac/Image/a b.jpg` →
/// `/hatrac/Image/a%20b.jpg`).
pub(crate) fn encode_hatrac_path(name: &str) -> String {
    name.split('/')
        .map(|s| utf8_percent_encode(s, SEGMENT).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// Accepts connections until `shutdown` fires.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<State>,
    mut shutdown: oneshot::Receiver<()>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let state = state.clone();
        tokio::spawn(async move {
            // Notified when a fault asks for the connection to be dropped without a response.
            let kill = Arc::new(Notify::new());
            let kill_svc = kill.clone();
            let svc = hyper::service::service_fn(move |req| {
                let state = state.clone();
                let kill = kill_svc.clone();
                async move { Ok::<_, Infallible>(handle(state, req, kill).await) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, svc);
            tokio::select! {
                _ = conn => {}
                _ = kill.notified() => {}
            }
        });
    }
}

fn take_fault(state: &State, method: &Method, path: &str) -> Option<Fault> {
    let mut faults = state.faults.lock().unwrap_or_else(|p| p.into_inner());
    let idx = faults.iter().position(|f| {
        f.method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method.as_str()))
            && path.starts_with(&f.path_prefix)
    })?;
    if faults[idx].skip > 0 {
        faults[idx].skip -= 1;
        return None;
    }
    let fault = faults[idx].clone();
    if faults[idx].times <= 1 {
        faults.remove(idx);
    } else {
        faults[idx].times -= 1;
    }
    Some(fault)
}

fn log(state: &State, method: &Method, path: &str, status: u16, headers: &HeaderMap) {
    state
        .log
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(LoggedRequest {
            method: method.to_string(),
            path: path.to_string(),
            status,
            range: header_str(headers, "range"),
        });
}

async fn handle(state: Arc<State>, req: Request<Incoming>, kill: Arc<Notify>) -> Resp {
    let method = req.method().clone();
    let raw_path = req.uri().path().to_string();
    let full = match req.uri().query() {
        Some(q) => format!("{raw_path}?{q}"),
        None => raw_path.clone(),
    };
    let headers = req.headers().clone();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return text(400, &format!("bad request body: {e}")),
    };
    let fault = take_fault(&state, &method, &raw_path);
    if let Some(f) = &fault {
        match f.mode {
            FaultMode::FailBeforeCommit503 => {
                log(&state, &method, &full, 503, &headers);
                return text(503, "injected fault: service unavailable");
            }
            FaultMode::StallMs => tokio::time::sleep(Duration::from_millis(f.stall_ms)).await,
            _ => {}
        }
    }
    let resp = route(&state, &method, &raw_path, &full, &headers, body).await;
    match fault.map(|f| f.mode) {
        Some(FaultMode::CommitThen500) => {
            log(&state, &method, &full, 500, &headers);
            text(500, "injected fault: internal server error after commit")
        }
        Some(FaultMode::CommitThenDropConnection) => {
            log(&state, &method, &full, 0, &headers);
            kill.notify_one();
            std::future::pending::<Resp>().await
        }
        _ => {
            log(&state, &method, &full, resp.status().as_u16(), &headers);
            resp
        }
    }
}

fn text(status: u16, msg: &str) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(format!("{msg}\n"))));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("text/plain"));
    r
}

fn json_resp(status: u16, v: &Json) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

fn err(e: ApiError) -> Resp {
    text(e.status, &e.message)
}

fn query_params(full: &str) -> Vec<(String, String)> {
    full.split_once('?')
        .map(|(_, q)| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (
                        percent_decode_str(k).decode_utf8_lossy().into_owned(),
                        percent_decode_str(v).decode_utf8_lossy().into_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Who is calling: `Ok(None)` anonymous, `Err` a bad credential.
fn identity(state: &State, headers: &HeaderMap) -> Result<Option<Identity>, ()> {
    let who = || Identity {
        id: super::clients::TEST_CLIENT_ID.to_string(),
        owner: state.options.owner,
    };
    if let Some(auth) = headers.get("authorization") {
        let ok = auth.to_str().ok().and_then(|a| a.strip_prefix("Bearer "))
            == Some(state.options.token.as_str());
        return if ok { Ok(Some(who())) } else { Err(()) };
    }
    if let Some(cookie) = headers.get("cookie").and_then(|c| c.to_str().ok()) {
        let ok = cookie.split(';').any(|c| c.trim() == state.options.cookie);
        return if ok { Ok(Some(who())) } else { Err(()) };
    }
    Ok(None)
}

async fn route(
    state: &Arc<State>,
    method: &Method,
    raw_path: &str,
    full: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Resp {
    if let Some(rest) = raw_path.strip_prefix("/_test/") {
        return control(state, method, rest, body);
    }
    let who = match identity(state, headers) {
        Ok(w) => w,
        Err(()) => return text(401, "invalid credential"),
    };
    if raw_path == "/authn/session" && method == Method::GET {
        return match who {
            Some(w) => json_resp(200, &super::clients::session(&w.id)),
            None => text(404, "no session"),
        };
    }
    let Some(who) = who else {
        return text(401, "authentication required");
    };
    if raw_path == "/ermrest" || raw_path == "/ermrest/" {
        return json_resp(200, &json!({"version": "test-catalog", "features": {}}));
    }
    if let Some(rest) = raw_path.strip_prefix("/ermrest/catalog/") {
        return ermrest(state, method, rest, full, headers, body, &who);
    }
    if raw_path.starts_with("/hatrac/") {
        return hatrac(state, method, raw_path, full, headers, body);
    }
    text(404, &format!("no such resource {raw_path}"))
}

fn control(state: &Arc<State>, method: &Method, rest: &str, body: Bytes) -> Resp {
    match (method.as_str(), rest) {
        ("GET", "log") => {
            let log = state.log.lock().unwrap_or_else(|p| p.into_inner()).clone();
            json_resp(200, &serde_json::to_value(log).unwrap_or(Json::Null))
        }
        ("DELETE", "log") => {
            state.log.lock().unwrap_or_else(|p| p.into_inner()).clear();
            text(204, "")
        }
        ("POST", "fault") => match serde_json::from_slice::<Fault>(&body) {
            Ok(f) => {
                state
                    .faults
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(f);
                text(201, "fault queued")
            }
            Err(e) => text(400, &format!("bad fault: {e}")),
        },
        ("POST", "reset") => match super::build_store(&state.seed) {
            Ok(s) => {
                *state.lock_store() = s;
                state
                    .faults
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clear();
                text(200, "reset")
            }
            Err(e) => err(e),
        },
        _ => text(404, "unknown test control endpoint"),
    }
}

#[derive(PartialEq)]
enum Format {
    Json,
    Csv,
    JsonStream,
}

fn negotiate(full: &str, headers: &HeaderMap) -> Format {
    for (k, v) in query_params(full) {
        if k == "accept" {
            return match v.as_str() {
                "csv" | "text/csv" => Format::Csv,
                "json-stream" | "application/x-json-stream" => Format::JsonStream,
                _ => Format::Json,
            };
        }
    }
    let accept = headers
        .get("accept")
        .and_then(|a| a.to_str().ok())
        .unwrap_or("");
    if accept.contains("text/csv") {
        Format::Csv
    } else if accept.contains("application/x-json-stream") {
        Format::JsonStream
    } else {
        Format::Json
    }
}

/// The JSON array an entity POST or attributegroup PUT sends (ERMrest answers 400 otherwise).
fn json_array_body(body: &[u8]) -> Result<Vec<Json>, ApiError> {
    match serde_json::from_slice(body) {
        Ok(Json::Array(rows)) => Ok(rows),
        Ok(_) => Err(ApiError::new(400, "request body must be a JSON array")),
        Err(e) => Err(ApiError::new(400, format!("request body is not JSON: {e}"))),
    }
}

fn rows_resp(rows: Vec<Map<String, Json>>, columns: Vec<String>, format: Format) -> Resp {
    let (body, ctype) = match format {
        Format::Json => (
            Json::Array(rows.into_iter().map(Json::Object).collect()).to_string(),
            "application/json",
        ),
        Format::JsonStream => (
            rows.into_iter()
                .map(|r| format!("{}\n", Json::Object(r)))
                .collect::<String>(),
            "application/x-json-stream",
        ),
        Format::Csv => {
            let mut out = String::new();
            csv::push_line(&mut out, columns.iter().map(|c| Some(c.as_str())));
            for r in rows {
                let cells: Vec<Option<String>> = columns
                    .iter()
                    .map(|c| r.get(c).and_then(csv::json_cell))
                    .collect();
                csv::push_line(&mut out, cells.iter().map(|c| c.as_deref()));
            }
            (out, "text/csv")
        }
    };
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static(ctype));
    r
}

fn ermrest(
    state: &Arc<State>,
    method: &Method,
    rest: &str,
    full: &str,
    headers: &HeaderMap,
    body: Bytes,
    who: &Identity,
) -> Resp {
    let (cat, api_path) = rest.split_once('/').unwrap_or((rest, ""));
    let (cid, snap) = match cat.split_once('@') {
        Some((c, s)) => (c, Some(s)),
        None => (cat, None),
    };
    if cid != state.options.catalog_id {
        return text(404, &format!("catalog {cid:?} not found"));
    }
    if let Some(s) = snap {
        if s.is_empty() || !s.bytes().all(|b| b == b'-' || b.is_ascii_alphanumeric()) {
            return text(404, &format!("snapshot {s:?} not found"));
        }
        if method != Method::GET && method != Method::HEAD {
            return text(403, "modification to catalog at previous revision");
        }
    }
    let (api, path) = api_path.split_once('/').unwrap_or((api_path, ""));
    let params = query_params(full);
    let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let limit = param("limit").and_then(|l| l.parse::<usize>().ok());
    let format = negotiate(full, headers);
    let result: ApiResult<Resp> = (|| {
        let mut store = state.lock_store();
        // A read at `@snap` sees the catalog as of that snaptime (see `store`'s docs).
        let at = snap.map(|s| store.snapshot(s)).transpose()?;
        match (method.as_str(), api) {
            ("GET", "") => Ok(json_resp(
                200,
                &json!({"id": cid, "snaptime": store.normalized_snaptime(at)?,
                        "rights": {"owner": who.owner, "create": true},
                        "features": {"rid_lease": true, "quantified_rid_lists": true}}),
            )),
            ("GET", "schema") => Ok(json_resp(200, &store.schema_at(at)?)),
            ("GET", "entity_rid") => {
                let rid = percent_decode_str(path).decode_utf8_lossy().into_owned();
                match store.resolve_rid(&rid, at)? {
                    Some(t) => Ok(json_resp(
                        200,
                        &json!({"schema_name": t.schema, "table_name": t.table, "RID": rid}),
                    )),
                    None => Err(ApiError::new(404, format!("RID {rid} not found"))),
                }
            }
            ("GET", "entity") => {
                let p = parse_data_path(path, false).map_err(|e| ApiError::new(400, e))?;
                let (table, rows) = store.select(&p, limit, at)?;
                let cols = table.columns.iter().map(|c| c.name.clone()).collect();
                Ok(rows_resp(rows, cols, format))
            }
            ("GET", "attribute") | ("GET", "attributegroup") | ("GET", "aggregate") => {
                let p = parse_data_path(path, true).map_err(|e| ApiError::new(400, e))?;
                let rows = store.project(&p, limit, api == "attributegroup", at)?;
                let cols = rows
                    .first()
                    .map(|r| r.keys().cloned().collect())
                    .unwrap_or_default();
                Ok(rows_resp(rows, cols, format))
            }
            ("POST", "entity") => {
                let rows = json_array_body(&body)?;
                let list = |k: &str| -> HashSet<String> {
                    param(k)
                        .map(|v| v.split(',').map(str::to_string).collect())
                        .unwrap_or_default()
                };
                let options = InsertOptions {
                    defaults: list("defaults"),
                    nondefaults: list("nondefaults"),
                    skip_conflicts: param("onconflict").as_deref() == Some("skip"),
                };
                let table = percent_decode_str(path).decode_utf8_lossy().into_owned();
                let inserted = store.insert(&table, &rows, &options, who, false)?;
                Ok(json_resp(
                    200,
                    &Json::Array(inserted.into_iter().map(Json::Object).collect()),
                ))
            }
            ("PUT", "attributegroup") => {
                let p = parse_data_path(path, true).map_err(|e| ApiError::new(400, e))?;
                let rows = json_array_body(&body)?;
                let out = store.update(&p, &rows, who)?;
                Ok(json_resp(
                    200,
                    &Json::Array(out.into_iter().map(Json::Object).collect()),
                ))
            }
            ("DELETE", "entity") => {
                let p = parse_data_path(path, false).map_err(|e| ApiError::new(400, e))?;
                store.delete(&p)?;
                Ok(text(204, ""))
            }
            (m, a) => Err(ApiError::new(
                405,
                format!("{m} on /{a} is not supported by the test catalog"),
            )),
        }
    })();
    result.unwrap_or_else(err)
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn object_headers(r: &mut Resp, o: &super::store::ObjectVersion) {
    let h = r.headers_mut();
    let mut set = |k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    set(
        "content-type",
        o.content_type
            .clone()
            .unwrap_or_else(|| "application/octet-stream".into()),
    );
    set(
        "content-md5",
        b64(&hex::decode(&o.md5_hex).unwrap_or_default()),
    );
    set(
        "content-sha256",
        b64(&hex::decode(&o.sha256_hex).unwrap_or_default()),
    );
    set(
        "content-location",
        format!("{}:{}", encode_hatrac_path(&o.name), o.version),
    );
    set("etag", format!("\"{}\"", o.version));
    let last = o.name.rsplit('/').next().unwrap_or("");
    set(
        "content-disposition",
        o.content_disposition
            .clone()
            .unwrap_or_else(|| format!("filename*=UTF-8''{}", utf8_percent_encode(last, SEGMENT))),
    );
}

/// Splits `name:version` when the suffix looks like a version id.
pub(crate) fn split_version(decoded: &str) -> (String, Option<String>) {
    let last_slash = decoded.rfind('/').unwrap_or(0);
    if let Some(colon) = decoded[last_slash..].rfind(':') {
        let at = last_slash + colon;
        let v = &decoded[at + 1..];
        if !v.is_empty() && v.bytes().all(|b| b == b'-' || b.is_ascii_alphanumeric()) {
            return (decoded[..at].to_string(), Some(v.to_string()));
        }
    }
    (decoded.to_string(), None)
}

fn header_str(headers: &HeaderMap, k: &str) -> Option<String> {
    headers
        .get(k)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn uri_list(status: u16, url: String) -> Resp {
    let mut r = text(status, &url);
    if let Ok(v) = HeaderValue::from_str(&url) {
        r.headers_mut().insert("location", v);
    }
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("text/uri-list"));
    r
}

fn hatrac(
    state: &Arc<State>,
    method: &Method,
    raw_path: &str,
    _full: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Resp {
    let result: ApiResult<Resp> = (|| {
        let mut store = state.lock_store();
        // Job URLs: <object>;upload[/<job>[/<n>]]
        if let Some((obj_raw, job_part)) = raw_path.split_once(";upload") {
            let name = percent_decode_str(obj_raw).decode_utf8_lossy().into_owned();
            let parts: Vec<&str> = job_part.split('/').filter(|s| !s.is_empty()).collect();
            let job_url = |id: &str| format!("{};upload/{id}", encode_hatrac_path(&name));
            return match (method.as_str(), parts.as_slice()) {
                ("POST", []) => {
                    let spec: Json = serde_json::from_slice(&body)
                        .map_err(|e| ApiError::new(400, format!("job body is not JSON: {e}")))?;
                    let num = |a: &str, b: &str| {
                        spec.get(a).or_else(|| spec.get(b)).and_then(Json::as_u64)
                    };
                    let s = |k: &str| spec.get(k).and_then(Json::as_str).map(str::to_string);
                    let chunk_length = num("chunk-length", "chunk_bytes")
                        .filter(|n| *n > 0)
                        .ok_or_else(|| ApiError::new(400, "job needs chunk-length > 0"))?;
                    let content_length = num("content-length", "total_bytes")
                        .ok_or_else(|| ApiError::new(400, "job needs content-length"))?;
                    let job = UploadJob {
                        id: uuid::Uuid::new_v4().simple().to_string(),
                        name: name.clone(),
                        chunk_length,
                        content_length,
                        content_md5: s("content-md5"),
                        content_sha256: s("content-sha256"),
                        content_type: s("content-type"),
                        content_disposition: s("content-disposition"),
                    };
                    store.create_job(&job)?;
                    Ok(uri_list(201, job_url(&job.id)))
                }
                ("GET", [id]) => {
                    let job = store
                        .job(&name, id)?
                        .ok_or_else(|| ApiError::new(404, format!("upload job {id} not found")))?;
                    Ok(json_resp(
                        200,
                        &json!({"url": job_url(id), "target": encode_hatrac_path(&name), "owner": ["test-user"],
                                "chunk-length": job.chunk_length, "content-length": job.content_length,
                                "content-md5": job.content_md5, "content-sha256": job.content_sha256,
                                "content-type": job.content_type}),
                    ))
                }
                ("PUT", [id, n]) => {
                    let job = store
                        .job(&name, id)?
                        .ok_or_else(|| ApiError::new(404, format!("upload job {id} not found")))?;
                    let n: u64 = n
                        .parse()
                        .map_err(|_| ApiError::new(400, format!("bad chunk number {n:?}")))?;
                    let count = job.content_length.div_ceil(job.chunk_length).max(1);
                    if n >= count {
                        return Err(ApiError::new(
                            400,
                            format!("chunk {n} beyond the {count} chunks of the job"),
                        ));
                    }
                    let expected = if n + 1 == count {
                        job.content_length - n * job.chunk_length
                    } else {
                        job.chunk_length
                    };
                    if body.len() as u64 != expected {
                        return Err(ApiError::new(
                            400,
                            format!("chunk {n} has {} bytes, expected {expected}", body.len()),
                        ));
                    }
                    store.put_chunk(id, n, &body)?;
                    Ok(text(204, ""))
                }
                ("POST", [id]) => {
                    let job = store
                        .job(&name, id)?
                        .ok_or_else(|| ApiError::new(404, format!("upload job {id} not found")))?;
                    let chunks = store.job_chunks(id)?;
                    let count = job.content_length.div_ceil(job.chunk_length);
                    if chunks.len() as u64 != count
                        || chunks.iter().enumerate().any(|(i, (n, _))| *n != i as u64)
                    {
                        return Err(ApiError::new(
                            409,
                            format!("job {id} has {} of {count} chunks", chunks.len()),
                        ));
                    }
                    let bytes: Vec<u8> = chunks.into_iter().flat_map(|(_, b)| b).collect();
                    check_md5(job.content_md5.as_deref(), &bytes)?;
                    let v = store.put_object(
                        &name,
                        &bytes,
                        job.content_type.as_deref(),
                        job.content_disposition.as_deref(),
                    )?;
                    store.delete_job(id)?;
                    Ok(uri_list(201, format!("{}:{v}", encode_hatrac_path(&name))))
                }
                ("DELETE", [id]) => {
                    store.delete_job(id)?;
                    Ok(text(204, ""))
                }
                _ => Err(ApiError::new(405, "unsupported upload job request")),
            };
        }
        let decoded = percent_decode_str(raw_path)
            .decode_utf8_lossy()
            .into_owned();
        let (name, version) = split_version(&decoded);
        match method.as_str() {
            "GET" | "HEAD" => {
                let o = store
                    .get_object(&name, version.as_deref())?
                    .ok_or_else(|| ApiError::new(404, format!("object {decoded} not found")))?;
                let len = o.bytes.len();
                // A single `bytes=START-[END]` range, as Hatrac serves (anything else: the
                // whole object, which RFC 9110 allows).
                let range = header_str(headers, "range").and_then(|r| parse_range(&r, len));
                let (status, span) = match range {
                    Some(Ok((start, end))) => (206, start..end + 1),
                    Some(Err(())) => {
                        let mut r = text(416, "requested range not satisfiable");
                        if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                            r.headers_mut().insert("content-range", v);
                        }
                        return Ok(r);
                    }
                    None => (200, 0..len),
                };
                let mut r = if method == Method::HEAD {
                    Response::new(Full::new(Bytes::new()))
                } else {
                    Response::new(Full::new(Bytes::from(o.bytes[span.clone()].to_vec())))
                };
                *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                object_headers(&mut r, &o);
                if let Ok(v) = HeaderValue::from_str(&span.len().to_string()) {
                    r.headers_mut().insert("content-length", v);
                }
                r.headers_mut()
                    .insert("accept-ranges", HeaderValue::from_static("bytes"));
                if status == 206 {
                    let value = format!("bytes {}-{}/{len}", span.start, span.end - 1);
                    if let Ok(v) = HeaderValue::from_str(&value) {
                        r.headers_mut().insert("content-range", v);
                    }
                }
                Ok(r)
            }
            "PUT" => {
                if version.is_some() {
                    return Err(ApiError::new(409, "cannot PUT to an object version"));
                }
                check_md5(header_str(headers, "content-md5").as_deref(), &body)?;
                let v = store.put_object(
                    &name,
                    &body,
                    header_str(headers, "content-type").as_deref(),
                    header_str(headers, "content-disposition").as_deref(),
                )?;
                Ok(uri_list(201, format!("{}:{v}", encode_hatrac_path(&name))))
            }
            _ => Err(ApiError::new(405, "unsupported Hatrac request")),
        }
    })();
    result.unwrap_or_else(err)
}

/// `bytes=START-` or `bytes=START-END` against an object of `len` bytes: `Some(Ok((start,
/// end)))` inclusive, `Some(Err(()))` when unsatisfiable (416), `None` when not a single byte
/// range (served whole).
fn parse_range(value: &str, len: usize) -> Option<Result<(usize, usize), ()>> {
    let spec = value.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (start, end) = spec.split_once('-')?;
    let start: usize = start.trim().parse().ok()?;
    let end: Option<usize> = match end.trim() {
        "" => None,
        e => Some(e.parse().ok()?),
    };
    if start >= len {
        return Some(Err(()));
    }
    let end = end.map_or(len - 1, |e| e.min(len - 1));
    if end < start {
        return None;
    }
    Some(Ok((start, end)))
}

/// Verifies a base64 `Content-MD5` against the bytes (400 on mismatch, as Hatrac does).
fn check_md5(content_md5: Option<&str>, bytes: &[u8]) -> ApiResult<()> {
    use md5::Digest;
    if let Some(expected) = content_md5 {
        let actual = b64(&md5::Md5::digest(bytes));
        if actual != expected {
            return Err(ApiError::new(
                400,
                format!("Content-MD5 {expected} does not match the received bytes ({actual})"),
            ));
        }
    }
    Ok(())
}
