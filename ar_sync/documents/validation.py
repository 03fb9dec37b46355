"""Validate documents before they leave: cXML against its DTD, UBL against the UBL 2.1 XSD
and (optionally) the EN 16931 and Peppol schematron.

Schemas are loaded from files the operator points at (``dtd_file``, ``xsd_dir``,
``schematron_files``), never fetched: every parser runs with the network off and entity
expansion disabled. Loading is done once per validator object; a connector keeps one.

Schematron needs ``saxonche`` (the ``validate`` extra). Compiling the two Peppol stylesheets
takes about half a second, a transform a few milliseconds, so a daemon can afford it; the
XSD alone catches the structural errors and costs under a millisecond.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lxml import etree

from ar_sync.documents.cxml import SAFE_PARSER

SVRL = "{http://purl.oclc.org/dsdl/svrl}"
SCHEMA_PARSER = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)


class DtdValidator:
    """cXML validation against a local DTD file (the DOCTYPE's URL is never fetched)."""

    def __init__(self, dtd_file: Path) -> None:
        with open(dtd_file, "rb") as fh:
            self.dtd = etree.DTD(fh)

    def errors(self, body: bytes) -> list[str]:
        try:
            doc = etree.fromstring(body, SAFE_PARSER)
        except etree.XMLSyntaxError as exc:
            return [f"not well-formed: {exc}"]
        if self.dtd.validate(doc):
            return []
        return _messages(self.dtd.error_log)


class UblValidator:
    """UBL 2.1 XSD (Invoice, CreditNote, ApplicationResponse) plus optional schematron."""

    def __init__(self, xsd_dir: Path, schematron_files: Sequence[Path] = ()) -> None:
        self.schemas: dict[str, etree.XMLSchema] = {}
        for root, name in (("Invoice", "UBL-Invoice-2.1.xsd"),
                           ("CreditNote", "UBL-CreditNote-2.1.xsd"),
                           ("ApplicationResponse", "UBL-ApplicationResponse-2.1.xsd")):
            path = Path(xsd_dir) / name
            if path.exists():
                self.schemas[root] = etree.XMLSchema(etree.parse(str(path), SCHEMA_PARSER))
        if not self.schemas:
            raise FileNotFoundError(f"no UBL 2.1 maindoc XSD in {xsd_dir}")
        self.schematron = Schematron(schematron_files) if schematron_files else None

    def findings(self, body: bytes) -> list[tuple[str, str, str]]:
        """``(rule id, flag, text)`` of every problem; flag ``fatal`` or ``warning``."""
        try:
            doc = etree.fromstring(body, SAFE_PARSER)
        except etree.XMLSyntaxError as exc:
            return [("XML", "fatal", str(exc))]
        schema = self.schemas.get(etree.QName(doc).localname)
        if schema is None:
            return [("XSD", "fatal", f"unexpected root element {doc.tag}")]
        found = [] if schema.validate(doc) else [
            ("XSD", "fatal", m) for m in _messages(schema.error_log)]
        if self.schematron is not None:
            found += self.schematron.findings(body)
        return found

    def errors(self, body: bytes) -> list[str]:
        """The fatal findings, as ``"RULE: text"``."""
        return [f"{rule}: {text}" for rule, flag, text in self.findings(body) if flag == "fatal"]


def _messages(log: Any) -> list[str]:
    """The messages of an lxml error log (its stubs do not say it is iterable)."""
    return [str(entry.message) for entry in log]


class Schematron:
    """Compiled schematron XSLTs (ISO skeleton, SVRL output) run with SaxonC-HE."""

    def __init__(self, xslt_files: Sequence[Path]) -> None:
        from saxonche import PySaxonProcessor

        self._proc: Any = PySaxonProcessor(license=False)
        compiler = self._proc.new_xslt30_processor()
        self._exes = [compiler.compile_stylesheet(stylesheet_file=str(p)) for p in xslt_files]

    def findings(self, body: bytes) -> list[tuple[str, str, str]]:
        node = self._proc.parse_xml(xml_text=body.decode("utf-8"))
        out: list[tuple[str, str, str]] = []
        for exe in self._exes:
            svrl = etree.fromstring(exe.transform_to_string(xdm_node=node).encode("utf-8"),
                                    SAFE_PARSER)
            for failed in svrl.iter(f"{SVRL}failed-assert"):
                text = " ".join((failed.findtext(f"{SVRL}text") or "").split())
                out.append((failed.get("id", "?"), failed.get("flag", "fatal"), text))
        return out
