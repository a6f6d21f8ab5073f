"""Audit what left the device: every payload is in a tamper-evident log, written before the send.

Run: python examples/audit_egress.py
"""

from specsteer import Assistant, ModelBackend
from specsteer.privacy import AuditLog


def main(device: ModelBackend | None = None, cloud: ModelBackend | None = None) -> bool:
    if device is None or cloud is None:
        from specsteer import default_models

        device, cloud = default_models()
    assistant = Assistant.in_process(device, cloud)  # the egress guard and audit log are on by default
    result = assistant.generate(
        "Email me at maya.okafor@example.org about the trip.",  # PII is pseudonymized
        context="My passport number is X1234567.",  # private: never leaves
        max_new_tokens=24,
    )
    report = result.privacy
    print(f"{report.payloads} payloads, {report.bytes_sent} bytes, fields: {report.fields_sent}")
    print(f"detectors fired: {report.detectors_fired}")

    log = AuditLog()  # the same log, under ~/.specsteer/audit
    for record in list(log.records())[-2:]:
        print(record["seq"], record["destination"], record["size"], "bytes")
    verdict = log.verify()
    print(verdict.summary())  # names the first bad record if anyone edited the file
    return verdict.ok


if __name__ == "__main__":
    main()
