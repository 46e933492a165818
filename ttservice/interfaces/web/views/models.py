"""Models: what is installed and known, downloads with live progress, remove, add another."""

from pathlib import Path

import streamlit as st

from ttservice import actions
from ttservice.exceptions import ModelError, TTServiceError
from ttservice.interfaces.web import services
from ttservice.interfaces.web.components.downloads import download_progress
from ttservice.supervision.service import running_service
from ttservice.transcription import device

settings, store = services.settings(), services.store()
st.title("Models")
try:
    where = device.resolve(settings.device, settings.device_index, settings.compute_type).describe()
    st.caption(f"Jobs run on {where}. Models live in the Hugging Face cache, shared with other tools.")
except ModelError as error:
    st.error(str(error))
if running_service(settings) is None:
    st.warning("No TTService is running here: a download starts once `ttservice serve` runs.")

download_progress()


def ask_download(name: str) -> None:
    try:
        result = actions.models.request_download(store, name)
    except TTServiceError as error:
        st.error(str(error))
        return
    if isinstance(result, Path):
        st.success(f"The model {name} is on disk already.")
        return
    st.toast(f"Downloading {name}…")
    st.rerun()


with st.form("add-model", clear_on_submit=True):
    other = st.text_input("Another model", placeholder="a Hugging Face repo id (org/name) or a local folder")
    if st.form_submit_button("Download or add"):
        other = other.strip()
        if other.startswith(("/", "~", ".")):
            try:
                folder = actions.models.add_folder(settings, other)
                st.success(f"Added {folder}: choose it on the Transcribe page.")
            except TTServiceError as error:
                st.error(str(error))
        elif other:
            ask_download(other)

widths = [3, 2, 2, 2, 2]
for column, title in zip(st.columns(widths), ["Model", "Installed", "Size", "Languages", None], strict=True):
    if title:
        column.markdown(f"**{title}**")
for model in actions.models.list_models(store, settings):
    name, state, size, languages, act = st.columns(widths)
    name.write(model.name)
    if model.bundled:
        state.markdown(":green-badge[bundled]")
    elif model.download is not None:
        state.markdown(f":blue-badge[downloading {model.download.progress:.0%}]")
    else:
        state.markdown(":green-badge[installed]" if model.installed else ":gray-badge[not installed]")
    size.write(f"{model.size_bytes / 2**20:,.0f} MB" if model.size_bytes else "—")
    languages.write({True: "multilingual", False: "English only", None: "—"}[model.multilingual])
    if model.bundled or model.download is not None:
        continue
    if not model.installed:
        if act.button("Download", key=f"download-{model.name}"):
            ask_download(model.name)
        continue
    confirm = f"confirm-remove-{model.name}"
    if act.button("Remove", key=f"remove-{model.name}"):
        st.session_state[confirm] = True
    if st.session_state.get(confirm):
        st.warning(f"Remove {model.name} ({model.path})? It can be downloaded again later.")
        yes, no = st.columns(2)
        if yes.button("Yes, remove it", key=f"yes-remove-{model.name}"):
            st.session_state.pop(confirm)
            try:
                actions.models.remove(store, settings, model.name)
            except TTServiceError as error:
                st.error(str(error))
            else:
                st.rerun()
        if no.button("No, keep it", key=f"no-remove-{model.name}"):
            st.session_state.pop(confirm)
            st.rerun()
