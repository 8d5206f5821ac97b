//! Where checkpoints are kept: a local directory, or a bucket of S3-compatible storage
//! (`s3://bucket/prefix`, through `object_store`).
//!
//! A store holds objects by key (`chk-00000003/n1-i0-panes.arrow`) under one pipeline's root.
//! Each object is written whole or not at all: locally a temporary file, synced, then renamed
//! (and the directory synced); in S3 a single PUT. The checkpoint protocol builds on that: a
//! checkpoint is complete once its manifest object exists, and it is written last.
//!
//! S3 settings come from `SET 's3.endpoint'`, `'s3.access-key'`, `'s3.secret-key'`,
//! `'s3.region'` and `'s3.path.style.access'` (Flink's keys), then from the `AWS_*` environment
//! variables (`AWS_ENDPOINT`, `AWS_ACCESS_KEY_ID`, …). An `http://` endpoint is allowed; path-style
//! requests are the default, as most S3-compatible servers want them. Calls run on a small
//! runtime of their own and the caller waits, as it waits for a local write: checkpoint writes
//! are synchronous (see [`crate::checkpoint`]).

use std::fs;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path as ObjectPath;
use object_store::{ClientConfigKey, RetryConfig};
use object_store::{ObjectStore, ObjectStoreExt};

use crate::error::{Result, StreamError};

/// One pipeline's checkpoint objects.
pub trait StateStore: Send + Sync {
    /// Where the objects are, for messages (`/var/state/p` or `s3://bucket/prefix/p`).
    fn describe(&self) -> String;
    /// Writes object `key` whole (a reader sees all of it or none of it).
    fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()>;
    /// Object `key`, if it exists.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>>;
    /// Every key under the root, sorted.
    fn list(&self) -> Result<Vec<String>>;
    /// Removes object `key` (gone already: fine).
    fn delete(&self, key: &str) -> Result<()>;
    /// Removes what removing objects leaves behind (local: empty directories, the root's too).
    fn tidy(&self) {}
}

/// The store of `location` (a local directory or `s3://bucket/prefix`), pipeline folder `folder`.
pub fn open(location: &Path, folder: &str, s3: &[(String, String)]) -> Result<Arc<dyn StateStore>> {
    match location.to_str().and_then(|l| l.strip_prefix("s3://")) {
        Some(rest) => Ok(Arc::new(S3Store::open(rest, folder, s3)?)),
        None => {
            let root = location.join(folder);
            fs::create_dir_all(&root)
                .map_err(|e| StreamError::io(format!("checkpoints: cannot create '{}'", root.display()), e))?;
            Ok(Arc::new(LocalStore { root }))
        }
    }
}

/// A local directory.
pub struct LocalStore {
    root: PathBuf,
}

impl LocalStore {
    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }
}

impl StateStore for LocalStore {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        use std::io::Write;
        let path = self.path(key);
        let folder = path.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&folder).map_err(|e| StreamError::io(format!("creating '{}'", folder.display()), e))?;
        let temp = path.with_extension("tmp");
        let io = |e| StreamError::io(format!("writing '{}'", temp.display()), e);
        {
            let mut file = fs::File::create(&temp).map_err(io)?;
            file.write_all(&bytes).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        fs::rename(&temp, &path).map_err(|e| StreamError::io(format!("renaming '{}'", temp.display()), e))?;
        // The rename is durable once the folder is.
        if let Ok(dir) = fs::File::open(&folder) {
            let _ = dir.sync_all();
        }
        Ok(())
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let path = self.path(key);
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StreamError::io(format!("reading '{}'", path.display()), e)),
        }
    }

    fn list(&self) -> Result<Vec<String>> {
        fn walk(dir: &Path, prefix: &str, out: &mut Vec<String>) -> std::io::Result<()> {
            for entry in fs::read_dir(dir)? {
                let entry = entry?;
                let name = entry.file_name().to_string_lossy().to_string();
                let key = if prefix.is_empty() { name } else { format!("{prefix}/{name}") };
                if entry.file_type()?.is_dir() {
                    walk(&entry.path(), &key, out)?;
                } else {
                    out.push(key);
                }
            }
            Ok(())
        }
        let mut keys = Vec::new();
        match walk(&self.root, "", &mut keys) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(StreamError::io(format!("reading '{}'", self.root.display()), e));
            }
            _ => {}
        }
        keys.sort();
        Ok(keys)
    }

    fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(StreamError::io(format!("removing '{}'", path.display()), e))
            }
            _ => Ok(()),
        }
    }

    fn tidy(&self) {
        if let Ok(entries) = fs::read_dir(&self.root) {
            for entry in entries.flatten() {
                // Only empty folders go.
                let _ = fs::remove_dir(entry.path());
            }
        }
        // The pipeline's own folder too, once nothing is left in it (a put makes it again).
        let _ = fs::remove_dir(&self.root);
    }
}

/// A prefix of an S3 bucket.
pub struct S3Store {
    store: Arc<dyn ObjectStore>,
    bucket: String,
    /// `prefix/folder`, without slashes at either end.
    root: String,
}

/// The runtime S3 calls run on, whoever waits for them (a tokio task or a blocking thread).
fn s3_runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("streamsql-s3")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| StreamError::Internal(format!("cannot start the S3 client's runtime: {e}")))
}

/// Runs `future` on the S3 runtime and waits for it.
fn wait<T: Send + 'static>(future: impl Future<Output = T> + Send + 'static) -> Result<T> {
    let (sender, receiver) = std::sync::mpsc::sync_channel(1);
    s3_runtime()?.spawn(async move {
        let _ = sender.send(future.await);
    });
    receiver.recv().map_err(|_| StreamError::Internal("an S3 call was dropped".into()))
}

impl S3Store {
    /// `rest`: `bucket/prefix` of an `s3://` location.
    fn open(rest: &str, folder: &str, settings: &[(String, String)]) -> Result<Self> {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(StreamError::Config(format!("checkpoints: 's3://{rest}' names no bucket")));
        }
        let setting = |key: &str| settings.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        // The AWS_* environment first; the settings override it.
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Some(endpoint) = setting("s3.endpoint") {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(endpoint) = builder.get_config_value(&AmazonS3ConfigKey::Endpoint) {
            builder = builder.with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(key) = setting("s3.access-key") {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = setting("s3.secret-key") {
            builder = builder.with_secret_access_key(secret);
        }
        if let Some(region) = setting("s3.region") {
            builder = builder.with_region(region);
        }
        let path_style = setting("s3.path.style.access").is_none_or(|v| v.eq_ignore_ascii_case("true"));
        builder = builder.with_virtual_hosted_style_request(!path_style);
        // A wrong endpoint fails a checkpoint (or the start) in seconds, not after the client's
        // default of 10 retries over 3 minutes; the checkpoint is tried again at the next interval.
        builder = builder
            .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout), "5s")
            .with_config(AmazonS3ConfigKey::Client(ClientConfigKey::Timeout), "60s")
            .with_retry(RetryConfig { max_retries: 3, retry_timeout: Duration::from_secs(30), ..Default::default() });
        let store =
            builder.build().map_err(|e| StreamError::Config(format!("checkpoints: cannot use 's3://{rest}': {e}")))?;
        let root = [prefix.trim_matches('/'), folder].iter().filter(|p| !p.is_empty()).cloned().collect::<Vec<_>>();
        Ok(Self { store: Arc::new(store), bucket: bucket.to_string(), root: root.join("/") })
    }

    fn path(&self, key: &str) -> ObjectPath {
        ObjectPath::from(format!("{}/{key}", self.root))
    }

    fn error(&self, what: &str, e: impl std::fmt::Display) -> StreamError {
        StreamError::Remote(format!("checkpoints: {what} in '{}': {e}", self.describe()))
    }
}

impl StateStore for S3Store {
    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.root)
    }

    fn put(&self, key: &str, bytes: Vec<u8>) -> Result<()> {
        let (store, path) = (self.store.clone(), self.path(key));
        wait(async move { store.put(&path, bytes.into()).await })?
            .map(|_| ())
            .map_err(|e| self.error(&format!("cannot write '{key}'"), e))
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let (store, path) = (self.store.clone(), self.path(key));
        let got = wait(async move {
            match store.get(&path).await {
                Ok(object) => object.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })?;
        got.map(|bytes| bytes.map(|b| b.to_vec())).map_err(|e| self.error(&format!("cannot read '{key}'"), e))
    }

    fn list(&self) -> Result<Vec<String>> {
        use futures::TryStreamExt;
        let (store, root) = (self.store.clone(), ObjectPath::from(self.root.clone()));
        let listed = wait(async move { store.list(Some(&root)).try_collect::<Vec<_>>().await })?
            .map_err(|e| self.error("cannot list the checkpoints", e))?;
        let prefix = format!("{}/", self.root);
        let mut keys: Vec<String> = listed
            .into_iter()
            .filter_map(|meta| meta.location.as_ref().strip_prefix(&prefix).map(str::to_string))
            .collect();
        keys.sort();
        Ok(keys)
    }

    fn delete(&self, key: &str) -> Result<()> {
        let (store, path) = (self.store.clone(), self.path(key));
        match wait(async move { store.delete(&path).await })? {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(&format!("cannot remove '{key}'"), e)),
        }
    }
}
