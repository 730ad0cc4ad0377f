//! `DataStore`: the seed's data store, a container `<name>.<component>` of the configured
//! object store (or of the one `backend` names).

use std::sync::Arc;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use ubuntu_ci_core::config::Config;
use ubuntu_ci_core::store::{self, open_store, Body, StoreOptions};

use crate::{runtime, to_python, wait};

/// How much of a file object is read at a time when it is streamed.
const CHUNK: usize = 1024 * 1024;
/// Chunks read ahead of the store: the memory a streamed put holds is about this many
/// chunks.
const CHUNKS_AHEAD: usize = 4;

/// A container of the data store: `DataStore("ticket.1", "sources", public=True)` writes
/// into `ticket.1.sources`, made if absent (an existing one keeps its visibility).
///
/// `backend` is a store URL (`file:///path/`, `memory://`, `http://server/`); by default
/// the configured store (the configuration file and `UBUNTU_CI_*` variables, as the CLI),
/// which is the embedded one in the data dir unless a server is set. `token` authenticates
/// to a server.
#[pyclass(module = "ubuntu_ci._native", frozen)]
pub(crate) struct DataStore {
    inner: Arc<store::DataStore>,
}

#[pymethods]
impl DataStore {
    #[new]
    #[pyo3(signature = (name, component, public = false, *, backend = None, token = None))]
    fn new(
        py: Python<'_>,
        name: String,
        component: String,
        public: bool,
        backend: Option<String>,
        token: Option<String>,
    ) -> PyResult<DataStore> {
        let inner = wait(py, async move {
            let store = match backend {
                Some(url) => open_store(
                    &url,
                    &StoreOptions {
                        public_url: None,
                        token,
                    },
                )?,
                None => Config::load(None)?.with_env().connect_store()?,
            };
            store::DataStore::open(store, &name, &component, public).await
        })?;
        Ok(DataStore {
            inner: Arc::new(inner),
        })
    }

    /// The container's name (`ticket.1.sources`).
    #[getter]
    fn container(&self) -> String {
        self.inner.container().to_string()
    }

    /// Stores `data` (`bytes`, or a binary file object read to its end) under `name`;
    /// the object's URL. A file object of a regular file is read by the store from the
    /// file itself; any other is streamed a chunk at a time, never read whole.
    fn put_file(&self, py: Python<'_>, name: String, data: &Bound<'_, PyAny>) -> PyResult<String> {
        let inner = Arc::clone(&self.inner);
        if data.is_instance_of::<PyBytes>() {
            // The bytes object itself, kept alive by the body: no copy of its content.
            let content: pyo3::pybacked::PyBackedBytes = data.extract()?;
            let body = Body::Bytes(bytes::Bytes::from_owner(content));
            return wait(py, async move { inner.put_file(&name, body).await }).map(String::from);
        }
        let text = py.import("io")?.getattr("TextIOBase")?;
        if !data.hasattr("read")? || data.is_instance(&text)? {
            return Err(PyTypeError::new_err(format!(
                "put_file takes bytes or a binary file object, not {}",
                data.get_type().name()?
            )));
        }
        if let Some(file) = regular_file(data)? {
            let url = wait(
                py,
                async move { inner.put_file(&name, Body::File(file)).await },
            )?;
            // Read to its end, as a copy through read() would have.
            data.call_method1("seek", (0, 2))?;
            return Ok(url.into());
        }
        stream(py, inner, name, data)
    }

    /// The content of `name` (at most 64 MiB: larger objects are for `download`).
    fn get_file<'py>(&self, py: Python<'py>, name: String) -> PyResult<Bound<'py, PyBytes>> {
        let inner = Arc::clone(&self.inner);
        let bytes = wait(py, async move { inner.get_bytes(&name).await })?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Writes the content of `name` into the file `path` (made or replaced), streamed.
    fn download(&self, py: Python<'_>, name: String, path: std::path::PathBuf) -> PyResult<()> {
        let inner = Arc::clone(&self.inner);
        wait(py, async move {
            let object = store::ObjectName::new(name)?;
            store::download(inner.store().as_ref(), inner.container(), &object, &path)
                .await
                .map(|_| ())
        })
    }

    /// The container's objects, sorted by name: dicts with `name`, `size`, `sha256`,
    /// `last_modified`, `url`, `container`.
    fn list_files(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let inner = Arc::clone(&self.inner);
        let files = wait(py, async move { inner.list_files().await })?;
        to_python(py, &files)
    }

    /// Deletes `name`.
    fn delete_file(&self, py: Python<'_>, name: String) -> PyResult<()> {
        let inner = Arc::clone(&self.inner);
        wait(py, async move { inner.delete_file(&name).await })
    }

    /// Makes the container readable without credentials (`True`) or not.
    fn change_visibility(&self, py: Python<'_>, public: bool) -> PyResult<()> {
        let inner = Arc::clone(&self.inner);
        wait(py, async move { inner.change_visibility(public).await })
    }

    /// Deletes the container; with `recursive`, its objects first (otherwise it must be
    /// empty).
    #[pyo3(signature = (recursive = false))]
    fn delete(&self, py: Python<'_>, recursive: bool) -> PyResult<()> {
        let inner = Arc::clone(&self.inner);
        wait(py, async move { inner.delete(recursive).await })
    }

    /// The URL `name` has (or would have) in this container.
    fn file_url(&self, name: &str) -> PyResult<String> {
        self.inner
            .file_url(name)
            .map(String::from)
            .map_err(|e| Python::attach(|py| crate::errors::to_python(py, &e)))
    }

    fn __repr__(&self) -> String {
        format!("DataStore({:?})", self.inner.container().as_str())
    }
}

/// The regular file behind a file object, opened anew at the object's position: the
/// store reads it without the interpreter. Only for plain files (`io.FileIO`, or a
/// buffered reader over one): a wrapper that has a descriptor but gives other bytes
/// (`gzip.GzipFile`, `lzma.LZMAFile`) is streamed. `None` for anything else (pipes,
/// sockets, in-memory files).
fn regular_file(data: &Bound<'_, PyAny>) -> PyResult<Option<std::fs::File>> {
    use std::io::{Seek, SeekFrom};
    let io = data.py().import("io")?;
    let plain = |object: &Bound<'_, PyAny>| object.is_instance(&io.getattr("FileIO")?);
    let buffered = data.is_instance(&io.getattr("BufferedReader")?)?
        || data.is_instance(&io.getattr("BufferedRandom")?)?;
    if !(plain(data)?
        || (buffered
            && data
                .getattr("raw")
                .is_ok_and(|raw| plain(&raw).unwrap_or(false))))
    {
        return Ok(None);
    }
    let Ok(fd) = data
        .call_method0("fileno")
        .and_then(|fd| fd.extract::<i32>())
    else {
        return Ok(None);
    };
    let Ok(position) = data.call_method0("tell").and_then(|p| p.extract::<u64>()) else {
        return Ok(None);
    };
    // The same file, through a description of its own: the Python object's position and
    // buffer stay as they are until it is moved to the end. Looked at before it is
    // opened: opening a FIFO would wait for a writer.
    let path = format!("/proc/self/fd/{fd}");
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_file() => {}
        _ => return Ok(None),
    }
    let Ok(mut file) = std::fs::File::open(&path) else {
        return Ok(None);
    };
    file.seek(SeekFrom::Start(position))
        .map_err(|e| pyo3::exceptions::PyOSError::new_err(e.to_string()))?;
    Ok(Some(file))
}

/// Streams a file object into `name`: chunks read here (the GIL held) go to the put,
/// running on the runtime, through a channel of a few chunks.
fn stream(
    py: Python<'_>,
    inner: Arc<store::DataStore>,
    name: String,
    data: &Bound<'_, PyAny>,
) -> PyResult<String> {
    let (chunks, received) =
        tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(CHUNKS_AHEAD);
    let reader =
        tokio_util::io::StreamReader::new(tokio_stream::wrappers::ReceiverStream::new(received));
    let runtime = runtime()?;
    let put = runtime.spawn(async move { inner.put_file(&name, Body::from_reader(reader)).await });
    let pumped = (|| -> PyResult<()> {
        loop {
            let chunk = data.call_method1("read", (CHUNK,))?;
            let chunk = chunk.cast::<PyBytes>().map_err(|_| {
                PyTypeError::new_err(
                    "put_file needs a binary file object (its read() gave no bytes)",
                )
            })?;
            if chunk.as_bytes().is_empty() {
                return Ok(());
            }
            let chunk = bytes::Bytes::copy_from_slice(chunk.as_bytes());
            // The put ended early (it failed): its result says why.
            if py.detach(|| chunks.blocking_send(Ok(chunk))).is_err() {
                return Ok(());
            }
            // Ctrl-C stops the upload.
            py.check_signals()?;
        }
    })();
    if let Err(err) = &pumped {
        // The put sees a failed read and stores nothing.
        let failed = std::io::Error::other(format!("reading the file object failed: {err}"));
        let _ = py.detach(|| chunks.blocking_send(Err(failed)));
    }
    drop(chunks);
    let stored = py.detach(|| runtime.block_on(put));
    pumped?;
    match stored {
        Ok(result) => result
            .map(String::from)
            .map_err(|e| crate::errors::to_python(py, &e)),
        Err(join) => Err(pyo3::exceptions::PyRuntimeError::new_err(format!(
            "the upload stopped: {join}"
        ))),
    }
}
