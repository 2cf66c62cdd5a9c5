//! A real Request Tracker 5 on loopback, for the support-request tests and the demo.
//!
//! [`RequestTracker::start`] makes a temporary directory with RT's configuration (read through
//! `RT_SITE_CONFIG`, with an empty `RT_SITE_CONFIG_DIR` so the system's is not read), an SQLite database
//! initialised by `rt-setup-database-5`, initial data (the queues, the custom fields applied to the support
//! queue, a `navigator` and a `vendor` user), an authentication token for each user (RT has no command for
//! that: a few lines of Perl through RT's own API), and starts RT's standalone server on a free port. RT's
//! outgoing mail goes to `outgoing-mail.txt` in the directory. The server runs in a process group of its
//! own that a watchdog kills when this process ends however it ends; dropping the value stops it too.
//!
//! RT comes from Debian's packages (`scripts/deps.sh`); [`RequestTracker::installed`] says whether it is.

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::{free_port, spawn_watchdog};

const SETUP: &str = "/usr/sbin/rt-setup-database-5";
const SERVER: &str = "/usr/share/request-tracker5/libexec/rt-server";
const LIB: &str = "/usr/share/request-tracker5/lib";
/// RT's server processes.
const WORKERS: u32 = 3;

/// The queue tickets are filed in, with the custom fields below applied to it.
pub const QUEUE: &str = "Vendor Support";
/// A queue without Navigator's custom fields, for tests of a misconfigured endpoint.
pub const BARE_QUEUE: &str = "Bare";
pub const KEY_FIELD: &str = "Navigator Request";
pub const SEVERITY_FIELD: &str = "Severity";
pub const CUSTOMER_FIELD: &str = "Customer";
/// RT's users: Navigator's, and the vendor's support engineer who answers tickets.
pub const NAVIGATOR_USER: &str = "navigator";
pub const NAVIGATOR_PASSWORD: &str = "navigator-test-password";
pub const VENDOR_USER: &str = "vendor";

/// A running RT.
pub struct RequestTracker {
    dir: PathBuf,
    port: u16,
    /// The `navigator` user's authentication token (`Authorization: token ...`).
    pub navigator_token: String,
    /// The `vendor` user's authentication token.
    pub vendor_token: String,
    server: Mutex<Option<Child>>,
    watchdog: Mutex<Option<ChildStdin>>,
    /// How long the database, data and tokens took, and how long the server took to answer.
    pub setup_time: Duration,
    pub start_time: Mutex<Duration>,
}

impl RequestTracker {
    /// Whether RT's packages are installed (`scripts/deps.sh` installs them).
    pub fn installed() -> bool {
        Path::new(SERVER).exists() && Path::new(SETUP).exists()
    }

    /// One RT shared by every test in a test binary, started on first use and stopped when the binary
    /// exits.
    pub fn shared() -> &'static RequestTracker {
        static SHARED: OnceLock<RequestTracker> = OnceLock::new();
        SHARED.get_or_init(|| RequestTracker::start().expect("starting Request Tracker"))
    }

    /// A new RT with its own database, on a free loopback port.
    pub fn start() -> Result<Self> {
        if !Self::installed() {
            bail!("Request Tracker is not installed: run scripts/deps.sh (make deps)");
        }
        let started = Instant::now();
        let port = free_port()?;
        let dir = std::env::temp_dir().join(format!("navigator-rt-{}-{port}", std::process::id()));
        for sub in ["site-config.d", "mason", "sessions"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        let watchdog = spawn_watchdog(&dir)?;
        write_config(&dir, port)?;
        let mut rt = RequestTracker {
            dir,
            port,
            navigator_token: String::new(),
            vendor_token: String::new(),
            server: Mutex::new(None),
            watchdog: Mutex::new(Some(watchdog)),
            setup_time: Duration::ZERO,
            start_time: Mutex::new(Duration::ZERO),
        };
        rt.run(SETUP, &["--action", "init", "--skip-create"])?;
        rt.run(SETUP, &["--action", "insert", "--datafile", "initialdata"])?;
        let tokens = rt.run("perl", &["token.pl", NAVIGATOR_USER, VENDOR_USER])?;
        let token = |user: &str| {
            tokens
                .lines()
                .find_map(|line| line.strip_prefix(&format!("{user} ")))
                .map(String::from)
                .with_context(|| format!("no token for {user} in {tokens:?}"))
        };
        rt.navigator_token = token(NAVIGATOR_USER)?;
        rt.vendor_token = token(VENDOR_USER)?;
        rt.setup_time = started.elapsed();
        rt.resume()?;
        Ok(rt)
    }

    /// RT's web address (REST2 is under `/REST/2.0`).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A ticket's page in RT's web UI.
    pub fn ticket_url(&self, id: &str) -> String {
        format!("{}/Ticket/Display.html?id={id}", self.url())
    }

    /// The directory holding RT's configuration, database, logs and outgoing mail.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stops the server (SIGTERM, then SIGKILL after 10 s); the database stays for [`Self::resume`].
    pub fn pause(&self) {
        if let Some(mut child) = self.server.lock().unwrap().take() {
            // `--`: without it kill(1) reads the negative process group id as an option and signals nothing.
            // SIGTERM: RT's SIGINT handler, run as root, changes ownership of the system's RT folder.
            let _ = Command::new("kill")
                .args(["-s", "TERM", "--", &format!("-{}", child.id())])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
            // Starlet's workers share the listening socket: any one left behind keeps answering, so the
            // whole process group goes, not only the master.
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
        }
    }

    /// Starts the server (again) on the same port and database, and waits until REST2 answers.
    pub fn resume(&self) -> Result<()> {
        let started = Instant::now();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("rt-server.log"))?;
        let child = self
            .command(SERVER)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            // Starlet with a few workers rather than the single-process Standalone server: the tests send
            // requests side by side, and on a busy machine one Perl process is the bottleneck.
            .args(["--server", "Starlet", "--max-workers", &WORKERS.to_string()])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0)
            .spawn()
            .context("starting rt-server")?;
        {
            let mut watchdog = self.watchdog.lock().unwrap();
            let pipe = watchdog.as_mut().context("the watchdog is gone")?;
            writeln!(pipe, "{}", child.id())?;
            pipe.flush()?;
        }
        *self.server.lock().unwrap() = Some(child);
        let log = self.dir.join("rt-server.log");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.answers() {
            let exited = self
                .server
                .lock()
                .unwrap()
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                bail!("rt-server exited ({status}); see {}", log.display());
            }
            if Instant::now() > deadline {
                bail!("Request Tracker did not answer within 60 s; see {}", log.display());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        *self.start_time.lock().unwrap() = started.elapsed();
        Ok(())
    }

    /// Whether REST2 answers 200 to Navigator's token.
    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let request = format!(
            "GET /REST/2.0/rt HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: token {}\r\n\r\n",
            self.navigator_token
        );
        let mut answer = [0u8; 16];
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok();
        stream.write_all(request.as_bytes()).is_ok()
            && stream.read_exact(&mut answer).is_ok()
            && answer.starts_with(b"HTTP/1.")
            && answer[8..].starts_with(b" 200")
    }

    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command
            .env("RT_SITE_CONFIG", self.dir.join("RT_SiteConfig.pm"))
            .env("RT_SITE_CONFIG_DIR", self.dir.join("site-config.d"))
            .current_dir(&self.dir);
        command
    }

    /// Runs an RT tool in RT's directory to its end; its output on success, an error with its output
    /// otherwise.
    fn run(&self, program: &str, args: &[&str]) -> Result<String> {
        let output = self
            .command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {program}"))?;
        if !output.status.success() {
            bail!(
                "{program} {args:?} failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

impl Drop for RequestTracker {
    fn drop(&mut self) {
        self.pause();
        // Closing the pipe lets the watchdog remove the directory and exit.
        self.watchdog.lock().unwrap().take();
    }
}

/// RT's site configuration, the initial data, the mail catcher and the token script.
fn write_config(dir: &Path, port: u16) -> Result<()> {
    let d = dir.display();
    fs::write(
        dir.join("RT_SiteConfig.pm"),
        format!(
            r#"Set($rtname, 'navigator.test');
Set($Organization, 'navigator.test');
Set($CorrespondAddress, 'rt@navigator.test');
Set($CommentAddress, 'rt-comment@navigator.test');
Set($WebDomain, 'localhost');
Set($WebPort, {port});
Set($WebPath, '');
Set($WebBaseURL, 'http://127.0.0.1:{port}');
Set($DatabaseType, 'SQLite');
Set($DatabaseName, '{d}/rt.db');
Set($MasonDataDir, '{d}/mason');
Set($MasonSessionDir, '{d}/sessions');
Set($LogToSyslog, undef);
Set($LogToSTDERR, 'warning');
Set($LogToFile, undef);
Set($LogDir, '{d}');
Set($MailCommand, 'sendmailpipe');
Set($SendmailPath, '{d}/send-mail');
Set($SendmailArguments, '');
Set($Timezone, 'UTC');
1;
"#
        ),
    )?;
    let severities = ["Critical", "Major", "Minor", "Cosmetic"]
        .iter()
        .enumerate()
        .map(|(i, s)| format!("{{ Name => '{s}', SortOrder => {i} }}"))
        .collect::<Vec<_>>()
        .join(", ");
    fs::write(
        dir.join("initialdata"),
        format!(
            r#"@Users = (
  {{ Name => '{NAVIGATOR_USER}', Password => '{NAVIGATOR_PASSWORD}', EmailAddress => 'navigator@provider.test',
     RealName => 'Navigator', Privileged => 1 }},
  {{ Name => '{VENDOR_USER}', EmailAddress => 'support@vendor.test', RealName => 'Vendor Support', Privileged => 1 }},
);
@ACL = (
  {{ UserId => '{NAVIGATOR_USER}', Right => 'SuperUser' }},
  {{ UserId => '{VENDOR_USER}', Right => 'SuperUser' }},
);
@Queues = (
  {{ Name => '{QUEUE}', Description => 'Support cases filed by Navigator' }},
  {{ Name => '{BARE_QUEUE}', Description => 'A queue without Navigator fields' }},
);
@CustomFields = (
  {{ Name => '{SEVERITY_FIELD}', Type => 'SelectSingle', LookupType => 'RT::Queue-RT::Ticket',
     Queue => ['{QUEUE}'], Values => [ {severities} ] }},
  {{ Name => '{KEY_FIELD}', Type => 'FreeformSingle', LookupType => 'RT::Queue-RT::Ticket', Queue => ['{QUEUE}'] }},
  {{ Name => '{CUSTOMER_FIELD}', Type => 'FreeformSingle', LookupType => 'RT::Queue-RT::Ticket', Queue => ['{QUEUE}'] }},
);
"#
        ),
    )?;
    let mail = dir.join("send-mail");
    fs::write(
        &mail,
        format!("#!/bin/sh\ncat >> '{d}/outgoing-mail.txt'\necho >> '{d}/outgoing-mail.txt'\n"),
    )?;
    let mut permissions = fs::metadata(&mail)?.permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    fs::set_permissions(&mail, permissions)?;
    fs::write(
        dir.join("token.pl"),
        format!(
            r#"use strict; use warnings;
use lib '{LIB}';
use RT; RT::LoadConfig(); RT::Init();
for my $name (@ARGV) {{
  my $user = RT::User->new(RT->SystemUser);
  $user->Load($name) or die "no RT user $name\n";
  my $token = RT::AuthToken->new(RT->SystemUser);
  my ($ok, $msg, $auth) = $token->Create(Owner => $user->Id, Description => 'Navigator tests');
  die "no token for $name: $msg\n" unless $ok;
  print "$name $auth\n";
}}
"#
        ),
    )?;
    Ok(())
}
