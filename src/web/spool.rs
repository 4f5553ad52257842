//! Where a received file waits until the person saves it: on disk, in the
//! origin private file system
//! (<https://developer.mozilla.org/en-US/docs/Web/API/File_System_API/Origin_private_file_system>),
//! written as it arrives, so a 1 GiB file costs a few MiB of memory; or,
//! where the browser has no OPFS (private windows, older browsers), in
//! `Blob`s, which the browser may or may not keep on disk.
//!
//! Files live in `peercall-incoming/<call>/` and that folder is removed
//! when the call ends ([`remove_call_dir`]).

use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Blob, BlobPropertyBag, FileSystemDirectoryHandle, FileSystemFileHandle,
    FileSystemGetDirectoryOptions, FileSystemGetFileOptions, FileSystemRemoveOptions,
    FileSystemWritableFileStream,
};

use crate::transfer::BLOB_PART_BYTES;

/// The OPFS folder for received files.
const ROOT_DIR: &str = "peercall-incoming";
/// Bytes gathered before one write to disk.
const DISK_WRITE_BYTES: usize = 4 * 1024 * 1024;

fn js_message(e: JsValue) -> String {
    crate::web::describe(&e)
}

thread_local! {
    /// The object URLs of received files, with their call's id: they are
    /// let go with the call ([`remove_call_dir`]).
    static URLS: std::cell::RefCell<Vec<(String, String)>> = Default::default();
}

/// `peercall-incoming` in the origin private file system (made if
/// `create`), or why there is none.
async fn incoming_dir(create: bool) -> Result<FileSystemDirectoryHandle, JsValue> {
    let storage = web_sys::window()
        .ok_or(JsValue::NULL)?
        .navigator()
        .storage();
    if !crate::web::has_method(&storage, "getDirectory") {
        return Err(JsValue::from_str("no origin private file system"));
    }
    let root: FileSystemDirectoryHandle = JsFuture::from(storage.get_directory())
        .await?
        .unchecked_into();
    let options = FileSystemGetDirectoryOptions::new();
    options.set_create(create);
    Ok(
        JsFuture::from(root.get_directory_handle_with_options(ROOT_DIR, &options))
            .await?
            .unchecked_into(),
    )
}

/// The folder for `call`'s received files, made if need be.
async fn call_dir(call: &str) -> Result<FileSystemDirectoryHandle, JsValue> {
    let options = FileSystemGetDirectoryOptions::new();
    options.set_create(true);
    let parent = incoming_dir(true).await?;
    Ok(
        JsFuture::from(parent.get_directory_handle_with_options(call, &options))
            .await?
            .unchecked_into(),
    )
}

/// Lets go of the received files of `call` when it ends: revokes their
/// object URLs (the memory behind them goes) and removes them from disk.
pub async fn remove_call_dir(call: &str) {
    URLS.with(|urls| {
        urls.borrow_mut().retain(|(of, url)| {
            if of == call {
                let _ = web_sys::Url::revoke_object_url(url);
            }
            of != call
        })
    });
    let Ok(parent) = incoming_dir(false).await else {
        return;
    };
    let options = FileSystemRemoveOptions::new();
    options.set_recursive(true);
    let _ = JsFuture::from(parent.remove_entry_with_options(call, &options)).await;
}

enum Store {
    Disk {
        dir: FileSystemDirectoryHandle,
        name: String,
        file: FileSystemFileHandle,
        writer: FileSystemWritableFileStream,
    },
    Memory {
        blobs: js_sys::Array,
    },
}

/// A received file being kept.
pub struct Spool {
    call: String,
    store: Store,
    pending: js_sys::Array,
    pending_bytes: usize,
}

impl Spool {
    /// Somewhere to keep file `name` of `call`: on disk if the browser
    /// lets us, else in memory.
    pub async fn open(call: &str, name: &str) -> Self {
        let store = match Self::open_disk(call, name).await {
            Ok(store) => store,
            Err(e) => {
                web_sys::console::info_1(
                    &format!(
                        "peercall: keeping a received file in memory (no disk: {})",
                        js_message(e)
                    )
                    .into(),
                );
                Store::Memory {
                    blobs: js_sys::Array::new(),
                }
            }
        };
        Self {
            call: call.to_owned(),
            store,
            pending: js_sys::Array::new(),
            pending_bytes: 0,
        }
    }

    async fn open_disk(call: &str, name: &str) -> Result<Store, JsValue> {
        let dir = call_dir(call).await?;
        let options = FileSystemGetFileOptions::new();
        options.set_create(true);
        let file: FileSystemFileHandle =
            JsFuture::from(dir.get_file_handle_with_options(name, &options))
                .await?
                .unchecked_into();
        let writer: FileSystemWritableFileStream = JsFuture::from(file.create_writable())
            .await?
            .unchecked_into();
        Ok(Store::Disk {
            dir,
            name: name.to_owned(),
            file,
            writer,
        })
    }

    /// Whether the file goes to disk.
    pub fn on_disk(&self) -> bool {
        matches!(self.store, Store::Disk { .. })
    }

    /// Keeps `bytes` (the next frame).
    pub async fn push(&mut self, bytes: &js_sys::Uint8Array) -> Result<(), String> {
        self.pending.push(bytes);
        self.pending_bytes += bytes.length() as usize;
        let limit = match self.store {
            Store::Disk { .. } => DISK_WRITE_BYTES,
            Store::Memory { .. } => BLOB_PART_BYTES,
        };
        if self.pending_bytes >= limit {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), String> {
        if self.pending.length() == 0 {
            return Ok(());
        }
        let blob = Blob::new_with_u8_array_sequence(&self.pending).map_err(js_message)?;
        self.pending = js_sys::Array::new();
        self.pending_bytes = 0;
        match &self.store {
            Store::Disk { writer, .. } => {
                let write = writer.write_with_blob(&blob).map_err(js_message)?;
                JsFuture::from(write)
                    .await
                    .map_err(|e| format!("writing to disk failed: {}", js_message(e)))?;
            }
            Store::Memory { blobs } => {
                blobs.push(&blob);
            }
        }
        Ok(())
    }

    /// Everything arrived: the file, as a URL to save it from. Always
    /// `application/octet-stream` (whatever the sender said), so the link
    /// downloads and never renders on our origin.
    pub async fn finish(mut self) -> Result<String, String> {
        self.flush().await?;
        let blob: Blob = match &self.store {
            Store::Disk { writer, file, .. } => {
                JsFuture::from(writer.close())
                    .await
                    .map_err(|e| format!("writing to disk failed: {}", js_message(e)))?;
                let file: web_sys::File = JsFuture::from(file.get_file())
                    .await
                    .map_err(js_message)?
                    .unchecked_into();
                let options = BlobPropertyBag::new();
                options.set_type("application/octet-stream");
                // A Blob view of the file on disk (no copy), with our type.
                Blob::new_with_blob_sequence_and_options(&js_sys::Array::of1(&file), &options)
                    .map_err(js_message)?
            }
            Store::Memory { blobs } => {
                let options = BlobPropertyBag::new();
                options.set_type("application/octet-stream");
                Blob::new_with_blob_sequence_and_options(blobs, &options).map_err(js_message)?
            }
        };
        let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(js_message)?;
        URLS.with(|urls| {
            urls.borrow_mut()
                .push((std::mem::take(&mut self.call), url.clone()))
        });
        Ok(url)
    }

    /// Gives up on the file: what was written is deleted.
    pub async fn discard(self) {
        if let Store::Disk {
            dir, name, writer, ..
        } = self.store
        {
            let _ = JsFuture::from(writer.abort()).await;
            let _ = JsFuture::from(dir.remove_entry(&name)).await;
        }
    }
}
