"""The SARIF 2.1.0 report, so CI code scanning (e.g. GitHub's) shows gradlens findings on the lines.

One SARIF rule per gradlens rule slug, listed in a fixed order so ``ruleIndex`` is stable across runs;
paths under the run's directory are written relative to the ``SRCROOT`` base (what code scanning needs to
match files in the repository); ``partialFingerprints`` are built from the rule, file, function and
statement text, not the line number, so a finding keeps its identity when code above it moves. A finding
without a location points at the script that ran, so no finding is dropped by tools that require one. The
location is the finding's root line (the line to edit); where the symptom was noticed is a
``relatedLocations`` entry.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from .. import findings as _findings
from ..findings import RULES, Finding

if TYPE_CHECKING:
    from ..record import RunRecord

__all__ = ["SarifReporter", "SARIF_SCHEMA", "SARIF_VERSION", "rule_description"]

SARIF_VERSION = "2.1.0"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://pypi.org/project/gradlens/"
_LEVEL = {"error": "error", "warning": "warning", "info": "note"}
_BASE = "SRCROOT"

def rule_description(slug: str) -> str:
    """A one-sentence description of a rule (the detectors' own when they publish one)."""
    return _findings.RULE_DESCRIPTIONS.get(slug, f"gradlens rule {slug}.")


def _rule_name(slug: str) -> str:
    return "".join(part.capitalize() for part in slug.split("-"))


class SarifReporter:
    """Renders a record as a SARIF 2.1.0 log with one run.

    Example:
        >>> from gradlens.record import RunRecord
        >>> import json
        >>> json.loads(SarifReporter().render(RunRecord()))["version"]
        '2.1.0'
    """

    def render(self, record: RunRecord) -> str:
        return json.dumps(self.log(record), indent=2, ensure_ascii=False) + "\n"

    def log(self, record: RunRecord) -> dict[str, Any]:
        """The SARIF log as a dict."""
        slugs = list(RULES) + sorted({f.kind for f in record.findings} - set(RULES))
        index = {slug: i for i, slug in enumerate(slugs)}
        run: dict[str, Any] = {
            "tool": {"driver": {
                "name": "gradlens",
                "version": record.gradlens,
                "semanticVersion": record.gradlens,
                "informationUri": INFORMATION_URI,
                "rules": [self._rule(slug) for slug in slugs],
            }},
            "invocations": [self._invocation(record)],
            "results": [self._result(record, f, index[f.kind]) for f in record.sorted_findings()],
            "columnKind": "unicodeCodePoints",
        }
        if record.root:
            run["originalUriBaseIds"] = {_BASE: {"uri": _dir_uri(record.root)}}
        return {"$schema": SARIF_SCHEMA, "version": SARIF_VERSION, "runs": [run]}

    @staticmethod
    def _rule(slug: str) -> dict[str, Any]:
        text = rule_description(slug)
        return {
            "id": slug,
            "name": _rule_name(slug),
            "shortDescription": {"text": text},
            "fullDescription": {"text": text},
            "help": {"text": f"{text} Silence it with `gradlens report --ignore {slug}`."},
            "properties": {"tags": ["autograd", "pytorch"]},
        }

    @staticmethod
    def _invocation(record: RunRecord) -> dict[str, Any]:
        inv: dict[str, Any] = {
            "executionSuccessful": record.crash is None,
            "exitCode": record.exit_status,
            "commandLine": " ".join(["gradlens", "report", *record.command]),
        }
        notes = []
        if record.crash is not None:
            what = "was interrupted" if record.crash.kind == "interrupt" else "crashed"
            detail = f"{record.crash.type}: {record.crash.message}".rstrip(": ")
            notes.append({"level": "error", "message": {"text": f"The script {what}: {detail}"}})
        notes.extend({"level": "note", "message": {"text": f"Not checked: {text}"}}
                     for text in record.not_checked)
        if notes:
            inv["toolExecutionNotifications"] = notes
        return inv

    def _result(self, record: RunRecord, f: Finding, rule_index: int) -> dict[str, Any]:
        result: dict[str, Any] = {
            "ruleId": f.kind,
            "ruleIndex": rule_index,
            "level": _LEVEL.get(f.severity, "warning"),
            "message": {"text": f.message},
            "locations": [self._location(record, f)],
            "partialFingerprints": {"gradlensFinding/v1": self._fingerprint(record, f)},
            "properties": {"severity": f.severity, "step": f.step, "count": f.count,
                           "subject": list(f.subject), "evidence": dict(f.evidence)},
        }
        related = [self._related(record, i, loc) for i, loc in enumerate(f.related_locations)]
        if related:
            result["relatedLocations"] = related
        return result

    def _related(self, record: RunRecord, index: int, loc) -> dict[str, Any]:
        """A related location (where the symptom was noticed, or the update statement of a loop): SARIF's
        ``relatedLocations`` entry, with an ``id`` and the statement as a snippet."""
        region: dict[str, Any] = {"startLine": max(1, int(loc.line))}
        statement = record.statements.get(f"{loc.file}:{loc.line}")
        if statement:
            region["snippet"] = {"text": statement}
        return {"id": index + 1,
                "physicalLocation": {"artifactLocation": self._artifact(record, loc.file), "region": region},
                "message": {"text": f"where gradlens noticed it{': ' + statement if statement else ''}"}}

    @staticmethod
    def _artifact(record: RunRecord, path: str) -> dict[str, Any]:
        root = record.root
        native = path.replace("\\", "/")
        if root and os.path.isabs(path):
            rel = os.path.relpath(path, root) if _under(path, root) else None
            if rel is not None:
                return {"uri": PurePosixPath(*rel.split(os.sep)).as_posix(), "uriBaseId": _BASE}
            return {"uri": _file_uri(path)}
        if os.path.isabs(path):
            return {"uri": _file_uri(path)}
        out: dict[str, Any] = {"uri": native}
        if root:
            out["uriBaseId"] = _BASE
        return out

    def _location(self, record: RunRecord, f: Finding) -> dict[str, Any]:
        loc = f.location
        if loc is None:
            target = _script(record)
            physical: dict[str, Any] = {"artifactLocation": self._artifact(record, target),
                                        "region": {"startLine": 1}}
            return {"physicalLocation": physical,
                    "message": {"text": "gradlens could not attribute this finding to a line; it "
                                        "concerns the whole run."}}
        region: dict[str, Any] = {"startLine": max(1, int(loc.line))}
        statement = record.statement(f)
        if statement:
            region["snippet"] = {"text": statement}
        out: dict[str, Any] = {"physicalLocation": {"artifactLocation": self._artifact(record, loc.file),
                                                    "region": region}}
        if loc.function and not loc.function.startswith("<"):
            out["logicalLocations"] = [{"name": loc.function, "kind": "function"}]
        return out

    def _fingerprint(self, record: RunRecord, f: Finding) -> str:
        loc = f.location
        parts = [f.kind]
        if loc is not None:
            uri = self._artifact(record, loc.file)["uri"]
            parts += [uri, loc.function, record.statement(f) or str(loc.line)]
        else:
            parts += [",".join(f.subject)]
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def _script(record: RunRecord) -> str:
    cmd = list(record.command)
    if cmd[:1] == ["-m"] and len(cmd) > 1:
        return cmd[1].replace(".", "/") + ".py"
    return cmd[0] if cmd else "."


def _under(path: str, root: str) -> bool:
    try:
        return os.path.commonpath([os.path.abspath(path), os.path.abspath(root)]) == os.path.abspath(root)
    except ValueError:  # different drives
        return False


def _file_uri(path: str) -> str:
    return Path(os.path.abspath(path)).as_uri()


def _dir_uri(root: str) -> str:
    uri = _file_uri(root)
    return uri if uri.endswith("/") else uri + "/"
