//! The harness's HTTP/1.1 server: hyper under an accept loop of our own,
//! so that slow, idle and greedy clients get bounded answers.
//!
//! - **Connections are capped** below the open-file limit (raised to its
//!   hard limit at start). Over the cap a connection is answered 503 with
//!   `Retry-After` at once and closed; an accept error (out of descriptors)
//!   backs off instead of spinning.
//! - **Heads must arrive in time**: once the first byte of a request is in,
//!   the whole head must follow within the header timeout; a keep-alive
//!   connection with no request under way is closed after the idle timeout.
//! - **Bodies must keep moving**: after a grace period of stalls, a body
//!   must average the minimum rate over the time the server waits for it
//!   (408 otherwise), so a slow real upload finishes and a drip does not.
//! - **Answers must be taken**: a write the client does not read for the
//!   send timeout ends the connection.
//! - **Every error is JSON**: the few answers hyper writes itself, before a
//!   request reaches the app (a malformed head 400, a URI over 64 KiB 414,
//!   headers over the buffer 431), are replaced by the same answer with the
//!   JSON body of SPEC.md §2.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use testflinger_functions::extract::SlowBody;
use testflinger_functions::App;
use testflinger_shared::config::Serving;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::Sleep;
use tower::ServiceExt;

/// Descriptors kept out of the connection cap's reach when the cap is not
/// configured: half the limit goes to connections, the rest to the store,
/// blob files being streamed and the refusals themselves.
const CONNECTION_SHARE: u64 = 2;
/// Refusals being written at once take at most this share of the open-file
/// limit; beyond it an over-cap connection is closed without an answer.
const REFUSAL_SHARE: u64 = 4;
/// How long a refusal may take to write before the connection is dropped.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(1);
/// How long a refusal reads what the client still sends before closing.
const REFUSAL_LINGER: Duration = Duration::from_millis(250);
/// How long shutdown waits for requests in flight.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The limits in force, resolved at start.
#[derive(Debug, Clone, Copy)]
pub struct Guards {
    pub serving: Serving,
    pub max_connections: usize,
    pub open_files: u64,
}

impl Guards {
    /// Raises the soft open-file limit to the hard one and sizes the
    /// connection cap below it.
    pub fn resolve(serving: Serving) -> Guards {
        let open_files = raise_open_file_limit();
        let derived = usize::try_from((open_files / CONNECTION_SHARE).max(16)).unwrap_or(1 << 20);
        Guards {
            serving,
            max_connections: serving.max_connections.unwrap_or(derived),
            open_files,
        }
    }
}

/// Makes the C allocator (glibc's, which SQLite uses) give large blocks
/// straight back to the system when they are freed. By default glibc raises
/// its mmap threshold after the first large free, so that the 16 MiB copies
/// SQLite makes of large jobs stay in its heap for good: 16 concurrent
/// 16 MiB submits left the harness at 136 MiB instead of 39 MiB
/// (`scripts/attack-memory.sh`).
pub fn return_large_blocks_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt takes no pointers and is thread-safe in glibc; it
    // only sets a tuning parameter of the allocator.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// The soft `RLIMIT_NOFILE` raised to the hard limit; the limit in force.
fn raise_open_file_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => limit,
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open-file limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE)
                .map(|(soft, _)| soft)
                .unwrap_or(1024)
        }
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets the
/// requests in flight finish (for up to 10 s).
pub async fn serve(
    listener: TcpListener,
    app: App,
    guards: Guards,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let slots = Arc::new(Semaphore::new(guards.max_connections));
    let refusals = Arc::new(Semaphore::new(
        usize::try_from(guards.open_files / REFUSAL_SHARE)
            .unwrap_or(1 << 12)
            .clamp(16, 1 << 12),
    ));
    let (stop, stopped) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    let mut backoff = Backoff::default();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    backoff.reset();
                    accepted
                }
                Err(e) => {
                    backoff.wait(&e).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        match slots.clone().try_acquire_owned() {
            Ok(slot) => {
                let connection = Connection {
                    app: app.clone(),
                    serving: guards.serving,
                    peer,
                    stopped: stopped.clone(),
                };
                tokio::spawn(async move {
                    connection.run(stream).await;
                    drop(slot);
                });
            }
            Err(_) => match refusals.clone().try_acquire_owned() {
                Ok(permit) => {
                    tokio::spawn(async move {
                        refuse(stream).await;
                        drop(permit);
                    });
                }
                Err(_) => drop(stream),
            },
        }
    }
    drop(listener);
    let _ = stop.send(true);
    let all = u32::try_from(guards.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN_TIMEOUT, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after {DRAIN_TIMEOUT:?}; stopping anyway");
    }
    Ok(())
}

/// Waits after an accept error: out of descriptors (or memory) the wait
/// doubles from 10 ms up to 1 s, logged once per streak; a connection the
/// peer reset before it was accepted is no reason to wait.
#[derive(Default)]
struct Backoff {
    delay: Option<Duration>,
}

impl Backoff {
    fn reset(&mut self) {
        if self.delay.take().is_some() {
            tracing::info!("accepting connections again");
        }
    }

    async fn wait(&mut self, error: &io::Error) {
        if matches!(
            error.kind(),
            io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::Interrupted
        ) {
            return;
        }
        let delay = match self.delay {
            None => {
                tracing::warn!(
                    error = %error,
                    "cannot accept connections; backing off until a descriptor is free"
                );
                Duration::from_millis(10)
            }
            Some(delay) => (delay * 2).min(Duration::from_secs(1)),
        };
        self.delay = Some(delay);
        tokio::time::sleep(delay).await;
    }
}

/// The answer to a connection over the cap. What the client sent is read
/// and dropped (for a moment, a little) before the socket closes, so that
/// the close does not reset the connection before the answer is read.
async fn refuse(mut stream: TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let answer = error_answer(
        503,
        "Service Unavailable",
        "The server has as many connections open as it allows; try again in a moment.",
        Some(1),
    );
    let written = tokio::time::timeout(REFUSAL_TIMEOUT, async {
        stream.write_all(&answer).await?;
        stream.shutdown().await
    })
    .await;
    if !matches!(written, Ok(Ok(()))) {
        return;
    }
    let _ = tokio::time::timeout(REFUSAL_LINGER, async {
        let mut sink = [0u8; 4096];
        let mut left = 64usize << 10;
        while left > 0 {
            match stream.read(&mut sink).await? {
                0 => break,
                n => left = left.saturating_sub(n),
            }
        }
        Ok::<_, io::Error>(())
    })
    .await;
}

/// A whole HTTP/1.1 error answer with the JSON body of SPEC.md §2, closing
/// the connection.
fn error_answer(status: u16, reason: &str, message: &str, retry_after: Option<u64>) -> Vec<u8> {
    let body = serde_json::json!({"message": message, "detail": {}}).to_string();
    let retry = retry_after
        .map(|s| format!("retry-after: {s}\r\n"))
        .unwrap_or_default();
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         {retry}connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// One accepted connection and what it needs to serve it.
struct Connection {
    app: App,
    serving: Serving,
    peer: SocketAddr,
    stopped: watch::Receiver<bool>,
}

impl Connection {
    async fn run(mut self, stream: TcpStream) {
        let activity = Arc::new(Activity::new());
        let io = Guarded::new(stream, activity.clone(), self.serving.send_timeout);
        let (app, serving, peer) = (self.app.clone(), self.serving, self.peer);
        let seen = activity.clone();
        let service = service_fn(move |request: hyper::Request<Incoming>| {
            seen.request_started();
            let done = seen.clone();
            let mut request = request.map(|body| Body::new(Paced::new(body, serving)));
            request.extensions_mut().insert(ConnectInfo(peer));
            let app = app.clone();
            async move {
                let response = app.oneshot(request).await?;
                Ok::<_, std::convert::Infallible>(response.map(|body| {
                    Body::new(Answered {
                        body,
                        activity: done,
                    })
                }))
            }
        });
        let connection = http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(io), service);
        let mut connection = pin!(connection);
        let mut ticks = tokio::time::interval(Duration::from_secs(1));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stopping = false;
        loop {
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(peer = %self.peer, error = %e, "connection ended");
                    }
                    return;
                }
                _ = ticks.tick() => {
                    if let Some(why) = activity.overdue(&self.serving) {
                        tracing::debug!(peer = %self.peer, why, "closing connection");
                        return;
                    }
                }
                _ = self.stopped.changed(), if !stopping => {
                    stopping = true;
                    connection.as_mut().graceful_shutdown();
                }
            }
        }
    }
}

/// Where a connection is between requests, for its timeouts.
struct Activity {
    phase: AtomicU8,
    /// Milliseconds from `origin` to the start of the phase.
    since: AtomicU64,
    origin: Instant,
}

/// Waiting for a request (idle timeout).
const IDLE: u8 = 0;
/// A request head has begun and not yet reached the app (header timeout).
const HEAD: u8 = 1;
/// A request is being served (the body and send guards apply).
const BUSY: u8 = 2;

impl Activity {
    fn new() -> Self {
        Activity {
            phase: AtomicU8::new(IDLE),
            since: AtomicU64::new(0),
            origin: Instant::now(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn enter(&self, phase: u8) {
        self.since.store(self.now(), Ordering::Relaxed);
        self.phase.store(phase, Ordering::Release);
    }

    /// Bytes arrived: on an idle connection, a request head has begun.
    fn bytes_read(&self) {
        if self.phase.load(Ordering::Acquire) == IDLE {
            self.enter(HEAD);
        }
    }

    fn request_started(&self) {
        self.phase.store(BUSY, Ordering::Release);
    }

    fn request_done(&self) {
        self.enter(IDLE);
    }

    fn in_head(&self) -> bool {
        self.phase.load(Ordering::Acquire) == HEAD
    }

    /// Why the connection should be closed now, if it should.
    fn overdue(&self, serving: &Serving) -> Option<&'static str> {
        let limit = match self.phase.load(Ordering::Acquire) {
            IDLE => serving.idle_timeout,
            HEAD => serving.header_timeout,
            _ => return None,
        };
        let elapsed = self
            .now()
            .saturating_sub(self.since.load(Ordering::Relaxed));
        (Duration::from_millis(elapsed) > limit).then(|| {
            if self.in_head() {
                "the request head did not arrive within the header timeout"
            } else {
                "idle longer than the idle timeout"
            }
        })
    }
}

/// A response body that marks the connection idle once it is done (sent
/// or dropped).
struct Answered {
    body: Body,
    activity: Arc<Activity>,
}

impl Drop for Answered {
    fn drop(&mut self) {
        self.activity.request_done();
    }
}

impl HttpBody for Answered {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A request body held to the minimum rate: the time the server spends
/// waiting for it may exceed the grace period only by what the bytes
/// received so far pay for at that rate.
struct Paced {
    body: Incoming,
    grace: Duration,
    min_rate: u64,
    received: u64,
    /// Time spent waiting for earlier frames.
    waited: Duration,
    waiting_since: Option<Instant>,
    deadline: Option<Pin<Box<Sleep>>>,
}

impl Paced {
    fn new(body: Incoming, serving: Serving) -> Self {
        Paced {
            body,
            grace: serving.body_grace,
            min_rate: serving.min_body_rate.max(1),
            received: 0,
            waited: Duration::ZERO,
            waiting_since: None,
            deadline: None,
        }
    }

    fn allowed_wait(&self) -> Duration {
        allowed_wait(self.grace, self.received, self.min_rate)
    }

    fn too_slow(&self, waited: Duration) -> SlowBody {
        SlowBody {
            received: self.received,
            waited_seconds: waited.as_secs(),
            min_rate: self.min_rate,
            grace_seconds: self.grace.as_secs(),
        }
    }
}

impl HttpBody for Paced {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                if let Some(since) = this.waiting_since.take() {
                    this.waited += since.elapsed();
                }
                this.deadline = None;
                if let Some(data) = frame.as_ref().and_then(|f| f.as_ref().ok()?.data_ref()) {
                    this.received += data.len() as u64;
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let since = *this.waiting_since.get_or_insert_with(Instant::now);
                let left = this.allowed_wait().saturating_sub(this.waited);
                let deadline = this.deadline.get_or_insert_with(|| {
                    Box::pin(tokio::time::sleep_until((since + left).into()))
                });
                ready!(deadline.as_mut().poll(cx));
                let waited = this.waited + since.elapsed();
                Poll::Ready(Some(Err(this.too_slow(waited).into())))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// How long a body of which `received` bytes have come may have been
/// waited for in all.
fn allowed_wait(grace: Duration, received: u64, min_rate: u64) -> Duration {
    grace + Duration::from_secs_f64(received as f64 / min_rate.max(1) as f64)
}

/// The connection's socket, with the send timeout and the JSON
/// replacement of hyper's own error answers.
struct Guarded {
    stream: TcpStream,
    activity: Arc<Activity>,
    send_timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
    /// Our answer in place of hyper's, and how much of it is written.
    replacement: Option<(Vec<u8>, usize)>,
}

impl Guarded {
    fn new(stream: TcpStream, activity: Arc<Activity>, send_timeout: Duration) -> Self {
        Guarded {
            stream,
            activity,
            send_timeout,
            stalled: None,
            replacement: None,
        }
    }

    /// Writes `buf` to the socket; pending longer than the send timeout is
    /// an error.
    fn write_timed(&mut self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.stream).poll_write(cx, buf) {
            Poll::Ready(result) => {
                self.stalled = None;
                Poll::Ready(result)
            }
            Poll::Pending => {
                let timeout = self.send_timeout;
                let stalled = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                ready!(stalled.as_mut().poll(cx));
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client stopped reading the answer",
                )))
            }
        }
    }

    /// Writes what is left of the replacement answer.
    fn drain_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some((answer, mut written)) = self.replacement.take() else {
            return Poll::Ready(Ok(()));
        };
        let result = loop {
            if written == answer.len() {
                break Poll::Ready(Ok(()));
            }
            match self.write_timed(cx, &answer[written..]) {
                Poll::Pending => break Poll::Pending,
                Poll::Ready(Err(e)) => break Poll::Ready(Err(e)),
                Poll::Ready(Ok(0)) => break Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => written += n,
            }
        };
        self.replacement = Some((answer, written));
        result
    }
}

/// hyper's own answer to a request it could not parse: a whole head, no
/// body, an error status; `Some(status)` when `buf` is one.
fn hyper_error_status(buf: &[u8]) -> Option<u16> {
    let head = buf.strip_prefix(b"HTTP/1.1 ")?;
    let status: u16 = std::str::from_utf8(head.get(..3)?).ok()?.parse().ok()?;
    let whole = buf.ends_with(b"\r\n\r\n")
        && buf
            .windows(b"\r\ncontent-length: 0\r\n".len())
            .any(|w| w == b"\r\ncontent-length: 0\r\n");
    (whole && status >= 400).then_some(status)
}

/// The JSON answer that replaces hyper's own for `status`.
fn replacement_answer(status: u16) -> Vec<u8> {
    let (reason, message) = match status {
        400 => (
            "Bad Request",
            "The request is not valid HTTP/1.1: a malformed request line or header (a control \
             character in a header value, for instance).",
        ),
        414 => (
            "URI Too Long",
            "The request's path and query are too long: the server reads up to 64 KiB of them.",
        ),
        431 => (
            "Request Header Fields Too Large",
            "The request's headers are too large: the server reads at most 100 headers in \
             about 400 KiB.",
        ),
        505 => (
            "HTTP Version Not Supported",
            "The server speaks HTTP/1.1 (and 1.0) only.",
        ),
        _ => ("Error", "The request could not be read."),
    };
    error_answer(status, reason, message, None)
}

impl AsyncRead for Guarded {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = ready!(Pin::new(&mut self.stream).poll_read(cx, buf));
        if buf.filled().len() > before {
            self.activity.bytes_read();
        }
        Poll::Ready(result)
    }
}

impl AsyncWrite for Guarded {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.replacement.is_some() {
            // hyper's answer was replaced; what else it writes is dropped.
            ready!(self.drain_replacement(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        if self.activity.in_head() {
            if let Some(status) = hyper_error_status(buf) {
                self.replacement = Some((replacement_answer(status), 0));
                // Written or not yet, hyper's bytes count as taken.
                if let Poll::Ready(Err(e)) = self.drain_replacement(cx) {
                    return Poll::Ready(Err(e));
                }
                return Poll::Ready(Ok(buf.len()));
            }
        }
        self.write_timed(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain_replacement(cx))?;
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain_replacement(cx))?;
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_own_error_answers_are_recognised_and_nothing_else() {
        let hyper_414 = b"HTTP/1.1 414 URI Too Long\r\nconnection: close\r\ncontent-length: 0\r\n\
                          date: Thu, 03 Dec 2026 17:07:18 GMT\r\n\r\n";
        assert_eq!(hyper_error_status(hyper_414), Some(414));
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hyper_error_status(ok), None);
        let with_body = b"HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\n\
                          content-length: 20\r\n\r\n";
        assert_eq!(hyper_error_status(with_body), None);
        assert_eq!(hyper_error_status(b"a log line, not an answer"), None);
    }

    #[test]
    fn replacement_answers_are_whole_json_answers() {
        for status in [400, 414, 431, 505, 499] {
            let answer = String::from_utf8(replacement_answer(status)).unwrap();
            let (head, body) = answer.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
            assert!(head.contains(&format!("content-length: {}", body.len())));
            assert!(head.contains("content-type: application/json"));
            let json: serde_json::Value = serde_json::from_str(body).unwrap();
            assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()));
            assert!(json["detail"].is_object());
        }
    }

    #[test]
    fn a_body_may_wait_the_grace_and_then_what_its_bytes_pay_for() {
        let allowed = |received| allowed_wait(Duration::from_secs(20), received, 1024);
        assert_eq!(allowed(0), Duration::from_secs(20));
        assert_eq!(allowed(10 << 10), Duration::from_secs(30));
        // A drip of a byte every few seconds earns a millisecond a byte.
        assert_eq!(
            allowed(1),
            Duration::from_secs(20) + Duration::from_secs_f64(1.0 / 1024.0)
        );
    }
}
