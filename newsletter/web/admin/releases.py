"""Releases in the console: the list, the create/edit form with its preview, feed imports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from flask import current_app, render_template, request
from flask_babel import get_locale
from flask_babel import gettext as _

from ...config import CONSOLE_PAGE_SIZE, DEFAULT_TIMEZONE, FEED_UPLOAD_MAX_BYTES, LANGUAGES
from ...domain.feed_fetch import FeedFetchError, fetch_feed_url
from ...domain.feed_import import FeedError, import_feed
from ...domain.releases import (
    InvalidInput,
    create_release,
    list_releases,
    new_release_values,
    update_release,
)
from ...domain.requests import RELEASE_FIELDS
from ...extensions import csrf, db
from ...models import Release
from ..auth import audit, can, requires
from ..inputs import InputError
from .console import ID, back_to, blueprint, int_arg
from .forms import local_time_to_iso, utc_to_local_input, zone_of_form


@blueprint.get("/releases")
@requires("releases:read")
def releases():
    language = request.args.get("language", "")
    if language and language not in LANGUAGES:
        choices = {"language": ", ".join(LANGUAGES)}
        raise InputError(400, "invalid", _("Check the filters."), choices)
    page = list_releases(
        page=int_arg("page"), per_page=CONSOLE_PAGE_SIZE, language=language or None
    )
    return render_template(
        "admin/releases.html",
        page=page,
        language=language,
        languages=LANGUAGES,
        filter_args={"language": language} if language else {},
    )


def release_form_data(form: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The release fields of the form, the publication time read in its time zone, and the
    errors of those two fields (the others are checked by the releases domain)."""
    data: dict[str, Any] = {name: form.get(name, "") for name in RELEASE_FIELDS}
    errors: dict[str, str] = {}
    if data["published_at"]:
        try:
            data["published_at"] = local_time_to_iso(
                data["published_at"], zone_of_form(form), "published_at"
            )
        except InvalidInput as exc:
            errors.update(exc.fields)
            data["published_at"] = None
    return data, errors


def release_form_values(release: Release | None, timezone: str) -> dict[str, str]:
    if release is None:
        return {"language": str(get_locale() or "fr")[:2], "timezone": timezone}
    return {
        "title": release.title,
        "dateline": release.dateline or "",
        "summary": release.summary or "",
        "body": release.body_html or "",
        "url": release.url or "",
        "image_url": release.image_url or "",
        "video_url": release.video_url or "",
        "language": release.language,
        "published_at": utc_to_local_input(release.published_at, timezone),
        "timezone": timezone,
    }


def release_form(release: Release | None):
    """Create or edit a release; "preview" shows the sanitised body without saving."""
    if request.method == "GET":
        values = release_form_values(release, DEFAULT_TIMEZONE)
        return render_template("admin/release_form.html", release=release, values=values, errors={})
    values = {name: request.form.get(name, "") for name in (*RELEASE_FIELDS, "timezone")}
    action = request.form.get("action", "save")
    data, time_errors = release_form_data(request.form)
    try:
        if time_errors:
            new_release_values(data)  # gathers the other fields' errors too
            raise InvalidInput(time_errors)
        if action == "preview":
            cleaned = new_release_values(data)
            return render_template(
                "admin/release_form.html",
                release=release,
                values=values,
                errors={},
                preview=cleaned,
            )
        if not can("releases:write"):
            raise InputError(403, "forbidden", _("Your role does not allow this."))
        if release is None:
            release = create_release(data)
            audit("release.create", "release", release.id)
        else:
            update_release(release, data)
            audit("release.update", "release", release.id)
        db.session.commit()
    except InvalidInput as exc:
        db.session.rollback()
        errors = {**exc.fields, **time_errors}
        return render_template(
            "admin/release_form.html", release=release, values=values, errors=errors
        ), 422
    return back_to("admin.edit_release", _("The release is saved."), release_id=release.id)


@blueprint.route("/releases/new", methods=["GET", "POST"])
@requires("releases:write")
def new_release():
    return release_form(None)


@blueprint.route(f"/releases/<{ID}:release_id>", methods=["GET", "POST"])
@requires("releases:read")
def edit_release(release_id: int):
    return release_form(db.get_or_404(Release, release_id))


def read_feed() -> tuple[bytes, str]:
    """The posted feed file, or the feed fetched from the posted address, and its source."""
    upload = request.files.get("file")
    url = (request.form.get("url") or "").strip()
    if upload is not None and upload.filename:
        data = upload.stream.read(FEED_UPLOAD_MAX_BYTES + 1)
        if len(data) > FEED_UPLOAD_MAX_BYTES:
            raise FeedError(_("The file is too large."))
        return data, upload.filename
    if not url:
        raise FeedError(_("Choose a feed file or give its address."))
    # Only web addresses: a path typed here must never read the server's own files.
    if urlsplit(url).scheme not in ("http", "https"):
        raise FeedError(_("Give an http or https address."))
    try:
        return fetch_feed_url(url, allowed_hosts=current_app.config["FEED_ALLOWED_HOSTS"]), url
    except FeedFetchError:
        # One answer for refused, unreachable, slow or too big: no port scanning.
        raise FeedError(_("This address could not be fetched.")) from None


@blueprint.post("/releases/import")
@csrf.exempt  # checked below, once the larger body limit of an upload is in place
@requires("releases:write")
def import_releases():
    request.max_content_length = FEED_UPLOAD_MAX_BYTES + 64 * 1024
    request.max_form_memory_size = FEED_UPLOAD_MAX_BYTES + 64 * 1024
    csrf.protect()
    language = request.form.get("default_language", "fr")
    if language not in LANGUAGES:
        language = "fr"
    try:
        data, source = read_feed()
        report = import_feed(data, default_language=language)
        audit(
            "releases.import",
            "releases",
            details={
                "source": source,
                "created": report.created,
                "updated": report.updated,
                "unchanged": report.unchanged,
            },
        )
        db.session.commit()
    except FeedError as exc:
        db.session.rollback()
        return render_template("admin/feed_report.html", report=None, error=str(exc)), 422
    return render_template("admin/feed_report.html", report=report, source=source, error=None)
