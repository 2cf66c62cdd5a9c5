//! A Git server on loopback: Git's own `git http-backend` (the smart HTTP protocol, as hosting services
//! speak it) behind a small HTTP/1.1 server, serving the bare repositories under one directory over
//! `http://127.0.0.1:<port>/<name>.git`. Clients only fetch here (Flux's source-controller); the tests commit
//! with `git` on a local clone and push through the file system.
//!
//! The server is a thread of the test process, so it ends with it; each request runs one short-lived
//! `git http-backend`.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

/// A running server. It stops accepting when the test process ends.
pub struct GitServer {
    root: PathBuf,
    port: u16,
}

impl GitServer {
    /// Serves the bare repositories under `root` (created if missing) on a free loopback port.
    pub fn start(root: &Path) -> Result<Self> {
        std::fs::create_dir_all(root)?;
        let listener = TcpListener::bind("127.0.0.1:0").context("binding the Git server")?;
        let port = listener.local_addr()?.port();
        let served = root.to_path_buf();
        std::thread::Builder::new().name("git-server".into()).spawn(move || {
            for stream in listener.incoming().flatten() {
                let root = served.clone();
                std::thread::spawn(move || {
                    // A client that hangs up mid-request is its own business; nothing to report to.
                    let _ = serve(stream, &root);
                });
            }
        })?;
        Ok(GitServer {
            root: root.to_path_buf(),
            port,
        })
    }

    /// Creates an empty bare repository `<name>.git` whose default branch is `main`; returns its path.
    pub fn create_repository(&self, name: &str) -> Result<PathBuf> {
        let path = self.root.join(format!("{name}.git"));
        git(
            &self.root,
            &[
                "init",
                "--quiet",
                "--bare",
                "--initial-branch=main",
                &path.display().to_string(),
            ],
        )?;
        Ok(path)
    }

    /// The clone URL of the repository `<name>.git`.
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/{name}.git", self.port)
    }
}

/// Runs `git` in `dir` with a fixed identity and no user or system configuration; returns its stdout.
pub fn git(dir: &Path, args: &[&str]) -> Result<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Navigator tests")
        .env("GIT_AUTHOR_EMAIL", "tests@navigator.invalid")
        .env("GIT_COMMITTER_NAME", "Navigator tests")
        .env("GIT_COMMITTER_EMAIL", "tests@navigator.invalid")
        .stdin(Stdio::null())
        .output()
        .context("running git (install it with scripts/deps.sh)")?;
    if !output.status.success() {
        bail!(
            "git {} in {} failed ({}): {}",
            args.join(" "),
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// One request, answered by `git http-backend` as a CGI program; the connection closes after it.
fn serve(stream: TcpStream, root: &Path) -> Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut parts = request_line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        bail!("malformed request line {request_line:?}");
    };
    let (path, query) = target.split_once('?').unwrap_or((target, ""));

    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            bail!("connection closed in the headers");
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let body = read_body(&mut reader, header("content-length"), header("transfer-encoding"))?;

    let mut cgi = Command::new("git");
    cgi.arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_PROJECT_ROOT", root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", method)
        .env("PATH_INFO", path)
        .env("QUERY_STRING", query)
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, variable) in [
        ("content-type", "CONTENT_TYPE"),
        ("content-encoding", "HTTP_CONTENT_ENCODING"),
        ("git-protocol", "GIT_PROTOCOL"),
    ] {
        if let Some(value) = header(name) {
            cgi.env(variable, value);
        }
    }
    let mut child = cgi.spawn().context("starting git http-backend")?;
    let mut stdin = child.stdin.take().context("piped stdin")?;
    // Written from another thread: http-backend may start answering before it has read everything.
    let writer = std::thread::spawn(move || stdin.write_all(&body));
    let output = child.wait_with_output()?;
    let _ = writer.join();

    // CGI output: headers (with an optional `Status:`), a blank line, the body.
    let out = output.stdout;
    let split = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| out.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let mut stream = stream;
    let Some((end, gap)) = split else {
        let message = format!(
            "git http-backend answered no headers: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        write!(
            stream,
            "HTTP/1.1 500 Internal Server Error\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{message}",
            message.len()
        )?;
        return Ok(());
    };
    let cgi_headers = String::from_utf8_lossy(&out[..end]).into_owned();
    let mut status = "200 OK".to_string();
    let mut response = String::new();
    for line in cgi_headers.lines() {
        match line.split_once(':') {
            Some((name, value)) if name.eq_ignore_ascii_case("status") => status = value.trim().to_string(),
            _ => {
                response.push_str(line);
                response.push_str("\r\n");
            }
        }
    }
    let content = &out[end + gap..];
    write!(
        stream,
        "HTTP/1.1 {status}\r\n{response}Content-Length: {}\r\nConnection: close\r\n\r\n",
        content.len()
    )?;
    stream.write_all(content)?;
    stream.flush()?;
    Ok(())
}

/// The request body, sent with a `Content-Length` or chunked (Git's own client chunks large requests).
fn read_body(reader: &mut impl BufRead, length: Option<&str>, encoding: Option<&str>) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    if encoding.is_some_and(|e| e.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or(""), 16)
                .with_context(|| format!("bad chunk size {size:?}"))?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = length {
        let length: usize = length
            .parse()
            .with_context(|| format!("bad Content-Length {length:?}"))?;
        body.resize(length, 0);
        reader.read_exact(&mut body)?;
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Git's own client clones what was pushed, over HTTP (both protocol versions), and the server
    /// answers 404 for a repository it does not hold.
    #[test]
    fn git_clones_a_pushed_commit_over_http() {
        let dir = std::env::temp_dir().join(format!("navigator-git-server-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let server = GitServer::start(&dir.join("served")).unwrap();
        let bare = server.create_repository("demo").unwrap();
        let work = dir.join("work");
        std::fs::create_dir_all(&work).unwrap();
        git(&work, &["init", "--quiet", "--initial-branch=main"]).unwrap();
        std::fs::write(work.join("a.yaml"), "kind: Example\n").unwrap();
        git(&work, &["add", "a.yaml"]).unwrap();
        git(&work, &["commit", "--quiet", "-m", "one"]).unwrap();
        git(&work, &["push", "--quiet", &bare.display().to_string(), "main"]).unwrap();
        let head = git(&work, &["rev-parse", "HEAD"]).unwrap();

        for protocol in ["0", "2"] {
            let clone = dir.join(format!("clone-v{protocol}"));
            git(
                &dir,
                &[
                    "-c",
                    &format!("protocol.version={protocol}"),
                    "clone",
                    "--quiet",
                    &server.url("demo"),
                    &clone.display().to_string(),
                ],
            )
            .unwrap();
            assert_eq!(git(&clone, &["rev-parse", "HEAD"]).unwrap(), head);
            assert_eq!(
                std::fs::read_to_string(clone.join("a.yaml")).unwrap(),
                "kind: Example\n"
            );
        }
        let missing = git(&dir, &["ls-remote", &server.url("nothing")])
            .unwrap_err()
            .to_string();
        assert!(missing.contains("not found") || missing.contains("404"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
