"""Work that runs once a response has been sent, so the client cannot time it (issue 11 #3).

Registered and unknown addresses must answer in the same time; the work only registered ones
need (issuing a code, queueing its email, the commit of a counted try) therefore waits until
the body is out. It starts as soon as the server has written the last byte of the body, or when
the server closes the response, whichever comes first, and runs once. Waiting for ``close()``
alone lost the work whenever the client dropped the connection before the server closed the
response: werkzeug's development server then skips ``close()`` (a reset code was answered
"sent" and never issued).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from flask import Response, after_this_request, current_app

from ..extensions import db


def _run_once(work: Callable[[], None]) -> Callable[[], None]:
    lock = threading.Lock()
    done = False

    def run() -> None:
        nonlocal done
        with lock:
            if done:
                return
            done = True
        work()

    return run


def _after_the_body(response: Response, work: Callable[[], None]) -> Response:
    """``response`` with ``work`` run once its body has been written (or it is closed)."""
    run = _run_once(work)
    body = b"".join(response.iter_encoded())
    response.set_data(body)  # fixes Content-Length, so the client needs nothing more from us

    def chunks() -> Iterator[bytes]:
        yield body
        run()  # asked for the next chunk: the whole body has been handed to the socket

    response.response = chunks()
    response.call_on_close(run)
    return response


def after_the_response(work: Callable[[], None]) -> None:
    """Run ``work`` (then commit) once this response has been sent, in an app context."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if not app.config.get("ACCOUNT_WORK_AFTER_RESPONSE", True):
        work()  # in this request's transaction
        db.session.commit()
        return

    def run() -> None:
        with app.app_context():
            try:
                work()
                db.session.commit()
            except Exception:
                db.session.rollback()
                app.logger.exception("deferred account work failed")
            finally:
                db.session.remove()

    after_this_request(lambda response: _after_the_body(response, run))


def commit_after_the_response() -> None:
    """Commit this request's transaction once the response has been sent.

    For a wrong code: the try was counted by a guarded ``UPDATE`` on a registered address's
    code, and nothing was written for an unknown one; the commit (a disk flush) is what would
    tell them apart. The transaction stays open, holding its row lock, until the commit after
    the response, so a simultaneous guess waits for it and the try limit still holds.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if not app.config.get("ACCOUNT_WORK_AFTER_RESPONSE", True):
        db.session.commit()
        return
    pending = db.session()  # this request's session, with its open transaction
    # Taken out of the app context's scope, so the teardown (which runs before the response is
    # sent) does not roll it back; the rest of the request gets a fresh session if it needs one.
    db.session.registry.clear()

    def run() -> None:
        with app.app_context():
            try:
                pending.commit()
            except Exception:
                pending.rollback()
                app.logger.exception("deferred account commit failed")
            finally:
                pending.close()

    after_this_request(lambda response: _after_the_body(response, run))
