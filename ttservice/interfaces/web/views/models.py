"""Models: what is installed and known, downloads with live progress, remove, add another."""

from pathlib import Path

import streamlit as st

from ttservice import actions
from ttservice.exceptions import TTServiceError
from ttservice.interfaces.web import services
from ttservice.interfaces.web.components.downloads import download_progress
from ttservice.interfaces.web.i18n import error_text, t
from ttservice.models import memory
from ttservice.models.catalog import GGML_PREFIX
from ttservice.supervision.service import running_service
from ttservice.transcription import WHISPER_CPP, device, engine

settings, store = services.settings(), services.store()
st.title(t("models.title"))
try:
    if engine.choose(settings.engine) == WHISPER_CPP:
        from ttservice.transcription.whispercpp import backend

        gpu = backend()
        where = t("models.whispercpp", backend=t("models.cpu_only") if gpu == "CPU" else gpu)
    else:
        runs_on = device.resolve(settings.device, settings.device_index, settings.compute_type)
        if runs_on.kind == "cpu":
            where = t("models.cpu", compute_type=runs_on.compute_type)
        else:
            where = t("models.cuda", index=runs_on.index, compute_type=runs_on.compute_type)
        where = t("models.faster_whisper", where=where)
    st.caption(t("models.device", where=where))
except TTServiceError as error:
    st.error(error_text(error))
if running_service(settings) is None:
    st.warning(t("models.no_service"))

download_progress()


def ask_download(name: str) -> None:
    try:
        result = actions.models.request_download(store, name)
    except TTServiceError as error:
        st.error(error_text(error))
        return
    if isinstance(result, Path):
        st.success(t("models.on_disk", name=name))
        return
    st.toast(t("models.downloading", name=name))
    st.rerun()


with st.form("add-model", clear_on_submit=True):
    other = st.text_input(t("models.other"), placeholder=t("models.other_hint"))
    if st.form_submit_button(t("models.add")):
        other = other.strip()
        if other.startswith(("/", "~", ".")):
            try:
                folder = actions.models.add_folder(settings, other)
                st.success(t("models.added", folder=folder))
            except TTServiceError as error:
                st.error(error_text(error))
        elif other:
            ask_download(other)

LANGUAGES = {True: "models.multilingual", False: "models.english_only", None: None}
hour, speakers = memory.per_hour()
per_hour = t("models.memory_rule", hour=f"{hour:,.0f}", speakers=f"{speakers / 1024:.1f}")
st.caption(t("models.rule") + " " + per_hour)
for model in actions.models.list_models(store, settings):
    with st.container(border=True):
        about, act = st.columns([5, 1], vertical_alignment="center")
        if model.bundled:
            state = f":green-badge[{t('models.bundled')}]"
        elif model.download is not None:
            badge = (
                "models.converting_badge"
                if model.download.phase == "converting"
                else "models.downloading_badge"
            )
            state = f":blue-badge[{t(badge, progress=f'{model.download.progress:.0%}')}]"
        elif model.installed:
            state = f":green-badge[{t('models.installed')}]"
        else:
            state = f":gray-badge[{t('models.not_installed')}]"
        if model.recommended:
            state += f" :violet-badge[{t('models.recommended')}]"
        about.markdown(f"**{model.name}** · {state}")
        facts = [f"{model.size_bytes / 2**20:,.0f} MB"] if model.size_bytes else []
        if model.download_mb:
            facts.append(t("models.download_size", mb=f"{model.download_mb:,.0f}"))
        if model.languages == ["th"]:
            facts.append(t("models.thai"))
        elif LANGUAGES[model.multilingual]:
            facts.append(t(LANGUAGES[model.multilingual]))
        if model.memory_mb:
            facts.append(t("models.memory", mb=f"{model.memory_mb:,.0f}"))
        if model.format == "transformers":
            facts.append(t("models.converted", source=model.source))
        if model.name.startswith(GGML_PREFIX):
            facts.append(t("models.ggml"))
        if model.speed:
            facts.append(t("models.speed", speed=f"{model.speed:.1f}"))
        elif model.expected_speed:
            facts.append(t("models.expected_speed", speed=f"{model.expected_speed:.1f}"))
        if model.license:
            facts.append(t("models.license", license=model.license))
        if model.published:
            facts.append(t("models.published", figure=model.published))
        if facts:
            about.caption(" · ".join(facts))
        if model.bundled or model.download is not None:
            continue
        if not model.installed:
            if act.button(t("models.download"), key=f"download-{model.name}", width="stretch"):
                ask_download(model.name)
            continue
        confirm = f"confirm-remove-{model.name}"
        if act.button(t("models.remove"), key=f"remove-{model.name}", width="stretch"):
            st.session_state[confirm] = True
        if st.session_state.get(confirm):
            st.warning(t("models.remove_confirm", name=model.name, path=model.path))
            yes, no = st.columns(2)
            if yes.button(t("models.remove_yes"), key=f"yes-remove-{model.name}"):
                st.session_state.pop(confirm)
                try:
                    actions.models.remove(store, settings, model.name)
                except TTServiceError as error:
                    st.error(error_text(error))
                else:
                    st.rerun()
            if no.button(t("models.remove_no"), key=f"no-remove-{model.name}"):
                st.session_state.pop(confirm)
                st.rerun()
