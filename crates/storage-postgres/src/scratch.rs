//! Throwaway databases for tests: each test gets a database of its own on the server
//! `HOLT_TEST_POSTGRES` names, so tests run in parallel without seeing each other, and the
//! database is dropped when the guard is.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio_postgres::NoTls;

/// The variable naming the server tests use: a URL of a database on it the user may connect
/// to, as a user who may create databases.
pub const ENV: &str = "HOLT_TEST_POSTGRES";

/// The server tests use when `HOLT_TEST_POSTGRES` is not set.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// A database created for one test and dropped (with whatever is still connected to it) when
/// this is dropped.
#[derive(Debug)]
pub struct ScratchDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl ScratchDatabase {
    /// Creates an empty database. Panics, saying how to start PostgreSQL, when no server
    /// answers: a test that needs PostgreSQL cannot pass without one.
    pub async fn create() -> ScratchDatabase {
        let admin_url = std::env::var(ENV).unwrap_or_else(|_| DEFAULT_URL.to_owned());
        let client = admin(&admin_url).await;
        static MADE: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "holt_test_{}_{}_{}",
            std::process::id(),
            MADE.fetch_add(1, Ordering::Relaxed),
            random_suffix()
        );
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot create a test database on {} ({ENV}): {}; the user needs CREATEDB",
                    crate::redacted(&admin_url),
                    crate::error::describe(&e)
                )
            });
        let url = with_database(&admin_url, &name);
        ScratchDatabase {
            admin_url,
            name,
            url,
        }
    }

    /// The URL of the database.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for ScratchDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop may run inside a test's runtime, which cannot be blocked on; a thread with a
        // runtime of its own does the work, and is waited for so the database is gone when the
        // test ends.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the test database");
            runtime.block_on(async {
                let client = admin(&admin_url).await;
                client.batch_execute(&sql).await
            })
        })
        .join();
        if let Ok(Err(e)) = dropped {
            eprintln!(
                "cannot drop the test database {}: {}",
                self.name,
                crate::error::describe(&e)
            );
        }
    }
}

/// A connection to the server's administrative database, or a panic that says how to start
/// PostgreSQL.
async fn admin(url: &str) -> tokio_postgres::Client {
    let mut config: tokio_postgres::Config = url
        .parse()
        .unwrap_or_else(|_| panic!("{ENV} is not a PostgreSQL URL"));
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(std::time::Duration::from_secs(5));
    }
    let (client, connection) = config.connect(NoTls).await.unwrap_or_else(|e| {
        panic!(
            "no PostgreSQL server answers at {} ({}): {}. These tests need one: start it (as \
             root: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start), or \
             set {ENV} to the URL of a database on a server where this user may create \
             databases (default {DEFAULT_URL})",
            crate::redacted(url),
            ENV,
            crate::error::describe(&e)
        )
    });
    tokio::spawn(connection);
    client
}

/// `url` with its database replaced by `name`; for a key-value string, `dbname` appended.
fn with_database(url: &str, name: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return format!("{url} dbname={name}");
    };
    let (base, query) = match url.find('?') {
        Some(at) => url.split_at(at),
        None => (url, ""),
    };
    let authority_start = scheme_end + 3;
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    format!("{base}/{name}{query}")
}

/// Sixteen hexadecimal digits, different for every call: the standard library's randomly keyed
/// hasher over the time.
fn random_suffix() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    hasher.write_u128(now);
    format!("{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn the_database_of_a_url_is_replaced() {
        for (url, expected) in [
            (
                "postgres://postgres@127.0.0.1:5432/test",
                "postgres://postgres@127.0.0.1:5432/x",
            ),
            (
                "postgres://u:p@h/db?options=-c%20a%3Db",
                "postgres://u:p@h/x?options=-c%20a%3Db",
            ),
            ("postgresql://h:1", "postgresql://h:1/x"),
            (
                "postgresql://h?sslmode=disable",
                "postgresql://h/x?sslmode=disable",
            ),
            ("host=h user=u", "host=h user=u dbname=x"),
        ] {
            assert_eq!(with_database(url, "x"), expected, "{url}");
        }
    }
}
