"""redaction.py: registered secrets and credential shapes never reach a log line, an error or a file."""

import logging

import pytest

from redaction import HIDDEN, install_log_redaction, redact, register_file_credentials, registered_secrets

SESSION_TOKEN = "FwoGZXIvYXdzE36CUB9WyoR168Gf/DLTtLH1ZeKJ5YoCk1r/GFhDLrfENVrCrN0gDvaG5EYmncU7u+u08b3UN7a4+YHU=="
SECRET_KEY = "V91CBQymsQAoLdJdjAUzS+fQfMOyY/kB0vmFfU/n"
ACCESS_KEY = "ASIAYDTA2WCZXN4N7QM3"
SIG = "Cs4uqVdORr4ythsIqiEEbJatcjbAUwinpFSHrvidZvA%3D"
GCS_TOKEN = "ya29.c.b0AXv0zTOnz8Yk1x7-Qn_secretgcs"


# Lines as botocore, urllib3 and the Azure SDK print them at debug level (values shortened).
@pytest.mark.parametrize(
    "line, secrets",
    [
        (
            (
                "Sending http request: <AWSPreparedRequest stream_output=False, method=PUT, url=http://s3/b/k, "
                f"headers={{'X-Amz-Date': b'20261201T200607Z', 'X-Amz-Security-Token': b'{SESSION_TOKEN}', "
                f"'Authorization': b'AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/20261201/us-east-1/s3/aws4_request, "
                "SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=901a0004bed1eb59ce5a81d6aae98651353cd5'}>"
            ),
            [SESSION_TOKEN, ACCESS_KEY, "901a0004bed1eb59ce5a81d6aae98651353cd5"],
        ),
        (
            f"CanonicalRequest:\nPUT\n/b/k\n\nhost:s3\nx-amz-date:20261201T200607Z\nx-amz-security-token:{SESSION_TOKEN}\n",
            [SESSION_TOKEN],
        ),
        ("Signature:\n901a0004bed1eb59ce5a81d6aae98651353cd5b3f5", ["901a0004bed1eb59ce5a81d6aae98651353cd5b3f5"]),
        (
            (
                'http://127.0.0.1:55893 "PUT /devstoreaccount1/c/f.gz?comp=blocklist&st=2026-12-01T20%3A01%3A17Z'
                f'&se=2026-12-02T08%3A06%3A17Z&sp=acw&sv=2026-10-06&sr=c&sig={SIG} HTTP/1.1" 201 0'
            ),
            [SIG],
        ),
        (
            f"BlobEndpoint=https://a.blob.core.windows.net;SharedAccessSignature=sv=2026-10-06&sr=c&sig={SIG}",
            ["sv=2026-10-06", SIG],
        ),
        ("DefaultEndpointsProtocol=https;AccountName=a;AccountKey=c2VjcmV0a2V5Cg==;", ["c2VjcmV0a2V5Cg=="]),
        (f"{{'Authorization': 'Bearer {GCS_TOKEN}'}}", [GCS_TOKEN]),
        ('{"access_token": "opaque-gcs-token-1", "expires_in": 3599}', ["opaque-gcs-token-1"]),
        (f'{{\\"SecretAccessKey\\": \\"{SECRET_KEY}\\", \\"SessionToken\\": \\"{SESSION_TOKEN}\\"}}', [SECRET_KEY]),
        ("{'X-StorageApi-Token': '5-123-opaquetoken'}", ["5-123-opaquetoken"]),
        ("token 12-345-" + "a" * 40 + " refused", ["12-345-" + "a" * 40]),
        ("https://storage.googleapis.com/b/o?X-Goog-Signature=abcdef0123&X-Goog-Credential=sa%40p", ["abcdef0123"]),
    ],
)
def test_credential_shapes_are_hidden_without_registration(clean_secrets, line, secrets):
    text = redact(line)
    for secret in secrets:
        assert secret not in text, text
    assert HIDDEN in text


@pytest.mark.parametrize(
    "text",
    [
        "The Storage API gave no GCS credentials (files/{id}?federationToken=1) for file 3; run the job again.",
        "The refreshed file credentials contain no GCS access token (gcsUploadParams.access_token).",
        "SignedHeaders=host;x-amz-security-token;x-amz-server-side-encryption",
        "Calculating signature using v4 auth.",
        "Table in.c-sales.customers: full copy to in.c-sales.customers (first run).",
        "The parameter 'source.#token' is missing and Keboola forwarded no token; enter a token.",
        "Copying slice 1 of 2 (s3://kbc-sapi-files/exp-2/1/x.csv.gz0000_part_00.gz) failed",
    ],
)
def test_ordinary_text_is_kept(clean_secrets, text):
    assert redact(text) == text


def test_file_answers_register_their_credentials(clean_secrets):
    opaque = "opaque-session-value-without-a-shape"
    answers = [
        {"id": 1, "credentials": {"AccessKeyId": "KEYID1234", "SecretAccessKey": "s3cr3t/key", "SessionToken": opaque}},
        {"id": 2, "uploadParams": {"credentials": {"SecretAccessKey": "upload-secret"}}},
        {
            "id": 3,
            "absCredentials": {"SASConnectionString": "BlobEndpoint=https://x;SharedAccessSignature=sv=1&sig=a%2Bb%3D"},
        },
        {
            "id": 4,
            "absUploadParams": {
                "absCredentials": {"SASConnectionString": "BlobEndpoint=https://y;SharedAccessSignature=sig=zz99"}
            },
        },
        {"id": 5, "gcsCredentials": {"access_token": "gcs-opaque-1", "projectId": "p"}},
        {"id": 6, "gcsUploadParams": {"access_token": "gcs-opaque-2", "bucket": "b"}},
    ]
    for answer in answers:
        assert register_file_credentials(answer) is answer
    secrets = registered_secrets()
    for value in ("KEYID1234", "s3cr3t/key", opaque, "upload-secret", "a%2Bb%3D", "a+b=", "zz99", "gcs-opaque-1"):
        assert value in secrets, value
    assert "gcs-opaque-2" in secrets and "p" not in secrets
    assert (
        redact(f"token {opaque} and the unquoted signature a+b=")
        == f"token {HIDDEN} and the unquoted signature {HIDDEN}"
    )


def test_uncaught_exceptions_and_warnings_go_through_the_redacting_log(clean_secrets, caplog, monkeypatch):
    import sys
    import threading
    import warnings

    for module, name in ((sys, "excepthook"), (threading, "excepthook"), (warnings, "showwarning")):
        monkeypatch.setattr(module, name, getattr(module, name))  # restored after the test
    logging.captureWarnings(False)  # an earlier install left it on, around another test's warnings catcher
    install_log_redaction()
    with caplog.at_level(logging.DEBUG):
        try:
            raise RuntimeError(f"x-amz-security-token:{SESSION_TOKEN}")
        except RuntimeError:
            sys.excepthook(*sys.exc_info())
        thread = threading.Thread(target=lambda: (_ for _ in ()).throw(ValueError(f"sig={SIG}")))
        thread.start()
        thread.join()
        warnings.showwarning(f"Bearer {GCS_TOKEN}", UserWarning, "sdk.py", 1)  # as warnings.warn shows a warning
    assert "Uncaught RuntimeError" in caplog.text and "Uncaught ValueError" in caplog.text
    assert "UserWarning: Bearer [hidden]" in caplog.text
    assert SESSION_TOKEN not in caplog.text and SIG not in caplog.text and GCS_TOKEN not in caplog.text
    logging.captureWarnings(False)


def test_redaction_is_idempotent(clean_secrets):
    """Records are redacted by the record factory and again by each handler's filter."""
    line = f"headers={{'X-Amz-Security-Token': b'{SESSION_TOKEN}', 'x': b'1'}} sig={SIG} Bearer {GCS_TOKEN}"
    once = redact(line)
    assert once == f"headers={{'X-Amz-Security-Token': b'{HIDDEN}', 'x': b'1'}} sig={HIDDEN} Bearer {HIDDEN}"
    assert redact(once) == once
