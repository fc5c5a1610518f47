//! The harness's connection guards, black-box over real sockets: timeouts,
//! the minimum body rate, the connection cap, the open-file limit, and the
//! JSON bodies of the answers written below the app (issue 12, items 1
//! and 5).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::Server;
use serde_json::Value;

/// An answer read off a raw socket.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", self.head, self.body))
    }

    /// A JSON error of SPEC.md §2 with this status.
    fn assert_json_error(&self, status: u16) -> String {
        assert_eq!(self.status, status, "{}\n{}", self.head, self.body);
        assert!(
            self.head
                .to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{}",
            self.head
        );
        let json = self.json();
        assert!(json["detail"].is_object(), "{json}");
        json["message"]
            .as_str()
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| panic!("no message: {json}"))
            .to_owned()
    }
}

fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(server.address()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
}

/// Reads one answer whose body has a `content-length`.
fn read_answer(stream: &mut TcpStream) -> Answer {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        if let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let n = stream.read(&mut buf).expect("an answer before the timeout");
        assert!(
            n > 0,
            "closed without an answer: {:?}",
            String::from_utf8_lossy(&bytes)
        );
        bytes.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while bytes.len() < head_end + length {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed in the body");
        bytes.extend_from_slice(&buf[..n]);
    }
    let status = head[9..12].parse().unwrap();
    Answer {
        status,
        head,
        body: String::from_utf8_lossy(&bytes[head_end..head_end + length]).into_owned(),
    }
}

fn send(server: &Server, request: &[u8]) -> Answer {
    let mut stream = connect(server);
    stream.write_all(request).unwrap();
    read_answer(&mut stream)
}

/// Whether the server closes the connection (EOF or reset) within `within`.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn answers_written_below_the_app_have_json_bodies() {
    let server = Server::start();
    let long_query = format!(
        "GET /v1/job?queue={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(100_000)
    );
    let message = send(&server, long_query.as_bytes()).assert_json_error(414);
    assert!(message.contains("too long"), "{message}");

    let control_byte =
        b"POST /v1/job HTTP/1.1\r\nHost: x\r\nContent-Type: application/\x01json\r\n\
                         Content-Length: 2\r\n\r\n{}";
    send(&server, control_byte).assert_json_error(400);

    let huge_header = format!(
        "GET /v1 HTTP/1.1\r\nHost: x\r\nX-A: {}\r\n\r\n",
        "b".repeat(500_000)
    );
    send(&server, huge_header.as_bytes()).assert_json_error(431);

    send(&server, b"GARBAGE\r\n\r\n").assert_json_error(400);

    // The server goes on answering well-formed requests.
    let ok = send(
        &server,
        b"GET /v1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
}

#[test]
fn a_head_sent_too_slowly_and_an_idle_keep_alive_connection_are_closed() {
    let server = Server::start_with(&[
        ("TESTFLINGER_HEADER_TIMEOUT", "1"),
        ("TESTFLINGER_IDLE_TIMEOUT", "2"),
    ]);
    // A head that never ends.
    let mut slow = connect(&server);
    slow.write_all(b"GET /v1 HTTP/1.1\r\nHo").unwrap();
    assert!(
        closed_within(&mut slow, Duration::from_secs(15)),
        "a head that stopped half-way keeps its connection"
    );

    // A keep-alive connection is served, then closed once idle.
    let mut idle = connect(&server);
    idle.write_all(b"GET /v1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_answer(&mut idle).status, 200);
    idle.write_all(b"GET /v1 HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert_eq!(read_answer(&mut idle).status, 200, "keep-alive serves more");
    assert!(
        closed_within(&mut idle, Duration::from_secs(15)),
        "an idle keep-alive connection stays open"
    );
}

#[test]
fn a_body_that_stalls_is_408_and_a_slow_steady_upload_finishes() {
    let server = Server::start_with(&[
        ("TESTFLINGER_BODY_TIMEOUT", "1"),
        ("TESTFLINGER_MIN_BODY_RATE", "64"),
    ]);
    let mut stalled = connect(&server);
    stalled
        .write_all(b"POST /v1/job HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
        .unwrap();
    let message = read_answer(&mut stalled).assert_json_error(408);
    assert!(message.contains("too slowly"), "{message}");

    // 1.2 KiB at about 400 bytes a second: past the grace, and faster than
    // the minimum rate.
    let body = format!(
        r#"{{"job_queue": "slow-link", "test_data": {{"test_cmds": "{}"}}}}"#,
        "x".repeat(1_150)
    );
    let mut steady = connect(&server);
    write!(
        steady,
        "POST /v1/job HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    let started = Instant::now();
    for chunk in body.as_bytes().chunks(100) {
        steady.write_all(chunk).unwrap();
        std::thread::sleep(Duration::from_millis(250));
    }
    let answer = read_answer(&mut steady);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.json()["job_id"].is_string(), "{}", answer.body);
    assert!(
        started.elapsed() > Duration::from_secs(1),
        "the upload outlasted the grace period, as it must for this test to mean anything"
    );
}

#[test]
fn connections_over_the_cap_are_refused_at_once_with_503() {
    let server = Server::start_with(&[("TESTFLINGER_MAX_CONNECTIONS", "3")]);
    let mut held: Vec<TcpStream> = (0..3).map(|_| connect(&server)).collect();
    // Each held connection is served (so it is surely accepted).
    for stream in &mut held {
        stream
            .write_all(b"GET /v1 HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        assert_eq!(read_answer(stream).status, 200);
    }
    let refused = send(&server, b"GET /v1 HTTP/1.1\r\nHost: x\r\n\r\n");
    let message = refused.assert_json_error(503);
    assert!(message.contains("connections"), "{message}");
    assert!(
        refused.head.to_ascii_lowercase().contains("retry-after: 1"),
        "{}",
        refused.head
    );

    // A slot freed is a slot to use again.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = send(
            &server,
            b"GET /v1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        );
        if answer.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "the freed slot was never reused");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The soft and hard open-file limits of a process.
fn open_file_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap()
        .to_owned();
    let mut fields = line["Max open files".len()..].split_whitespace();
    (
        fields.next().unwrap().to_owned(),
        fields.next().unwrap().to_owned(),
    )
}

#[test]
fn the_open_file_limit_is_raised_to_the_hard_limit_and_the_cap_sits_below_it() {
    let (_, hard) = open_file_limits(std::process::id());
    let server = Server::start_with_ulimit("-Sn 64", &[]);
    let (soft_now, hard_now) = open_file_limits(server.child.id());
    assert_eq!(soft_now, hard_now, "the soft limit was not raised");
    assert_eq!(hard_now, hard);
    if let Ok(hard) = hard.parse::<u64>() {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !server.logged(&format!("max_connections={}", hard / 2)) {
            assert!(Instant::now() < deadline, "the cap is not half the limit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn out_of_descriptors_the_server_backs_off_and_recovers() {
    // 64 descriptors in all, and a cap that does not protect them: accepts
    // fail with EMFILE until the head timeout frees some.
    let server = Server::start_with_ulimit(
        "-n 64",
        &[
            ("TESTFLINGER_MAX_CONNECTIONS", "1000"),
            ("TESTFLINGER_HEADER_TIMEOUT", "1"),
        ],
    );
    let flood: Vec<TcpStream> = (0..100)
        .filter_map(|_| TcpStream::connect(server.address()).ok())
        .map(|mut s| {
            let _ = s.write_all(b"GET /v1 HTTP/1.1\r\n");
            s
        })
        .collect();
    assert!(flood.len() > 64, "the flood could not even connect");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.logged("backing off") {
        assert!(Instant::now() < deadline, "no accept error was logged");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(flood);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut stream = connect(&server);
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let sent = stream.write_all(b"GET /v1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let mut answer = Vec::new();
        if sent.is_ok()
            && stream.read_to_end(&mut answer).is_ok()
            && answer.starts_with(b"HTTP/1.1 200")
        {
            break;
        }
        assert!(Instant::now() < deadline, "the server did not recover");
        std::thread::sleep(Duration::from_millis(100));
    }
}
