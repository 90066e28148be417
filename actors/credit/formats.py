"""The three payload formats banks answer in, both ways: ``encode_*`` (what the simulated banks
send) and ``parse_*`` (what the fetchers read back into ``Offer``).

* ``json``: one document, ``{"bank": id, "products": [{"id", "name", "type", "apr", "amount":
  {"min", "max"}, "term_months": {"min", "max"}, "fees": {...}, "eligibility": {...}}]}``.
* ``openbanking``: pages in the style of open-banking product endpoints, ``{"Data": {"Product":
  [...]}, "Links": {"Next": url-or-null}, "Meta": {"TotalPages": n}}``, amounts as strings.
* ``csv``: ``;``-separated with a decimal comma and a ``%`` on the rate, as many European exports.

A payload that does not normalise raises ``BankPayloadError`` naming the bank: a failed fetch.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from pydantic import ValidationError

from protocols.credit import BankConfig, BankPayloadError, Offer

__all__ = ["CSV_COLUMNS", "encode_csv", "encode_json", "encode_openbanking_page", "parse_csv",
           "parse_json", "parse_openbanking_page"]

CSV_COLUMNS = ("product_id", "name", "type", "rate", "min_amount", "max_amount", "min_term",
               "max_term", "fee_upfront", "fee_monthly", "origination", "min_income", "age_from",
               "age_to", "min_score")
_OB_TYPES = {"personal": "PersonalLoan", "car": "AutoLoan", "home": "HomeImprovementLoan",
             "student": "StudentLoan"}
_OB_BACK = {v: k for k, v in _OB_TYPES.items()}


# --- encoders (the banks) ------------------------------------------------------------------------

def encode_json(bank: BankConfig, offers: list[Offer]) -> bytes:
    return json.dumps({"bank": bank.bank_id, "products": [{
        "id": o.product_id, "name": o.product, "type": o.product_type, "apr": o.apr,
        "amount": {"min": o.min_amount, "max": o.max_amount},
        "term_months": {"min": o.min_term, "max": o.max_term},
        "fees": {"upfront": o.upfront_fee, "monthly": o.monthly_fee,
                 "origination_pct": o.origination_pct},
        "eligibility": {"min_income": o.min_income, "min_age": o.min_age, "max_age": o.max_age,
                        "min_score": o.min_score_band}} for o in offers]}).encode()


def encode_openbanking_page(bank: BankConfig, offers: list[Offer], page: int,
                            next_url: str | None) -> bytes:
    size = bank.page_size
    pages = max(1, -(-len(offers) // size))
    chunk = offers[(page - 1) * size:page * size]
    return json.dumps({
        "Data": {"Product": [{
            "ProductId": o.product_id, "ProductName": o.product,
            "ProductType": _OB_TYPES[o.product_type],
            "LoanInterest": {"Rate": f"{o.apr:.3f}", "RateType": "Fixed"},
            "MinimumAmount": f"{o.min_amount:.2f}", "MaximumAmount": f"{o.max_amount:.2f}",
            "MinimumTermMonths": o.min_term, "MaximumTermMonths": o.max_term,
            "Fees": [{"FeeType": "Arrangement", "Amount": f"{o.upfront_fee:.2f}"},
                     {"FeeType": "Servicing", "Amount": f"{o.monthly_fee:.2f}",
                      "Frequency": "Monthly"},
                     {"FeeType": "Origination", "Rate": f"{o.origination_pct:.3f}"}],
            "Eligibility": {"MinimumIncome": f"{o.min_income:.2f}",
                            "AgeRange": [o.min_age, o.max_age],
                            "CreditScoreBand": o.min_score_band}} for o in chunk]},
        "Links": {"Next": next_url if page < pages else None},
        "Meta": {"TotalPages": pages}}).encode()


def _comma(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".").replace(".", ",") or "0"


def encode_csv(bank: BankConfig, offers: list[Offer]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for o in offers:
        writer.writerow([o.product_id, o.product, o.product_type, _comma(o.apr) + "%",
                         _comma(o.min_amount), _comma(o.max_amount), o.min_term, o.max_term,
                         _comma(o.upfront_fee), _comma(o.monthly_fee), _comma(o.origination_pct),
                         _comma(o.min_income), o.min_age, o.max_age, o.min_score_band])
    return out.getvalue().encode()


# --- parsers (the fetchers) ----------------------------------------------------------------------

def _offer(bank: BankConfig, fields: dict[str, Any]) -> Offer:
    try:
        return Offer(bank_id=bank.bank_id, lender=bank.name, region=bank.region,
                     country=bank.country, **fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise BankPayloadError(bank.bank_id, f"product {fields.get('product_id')!r}: "
                               f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def _json(bank: BankConfig, body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BankPayloadError(bank.bank_id, f"not JSON: {exc}") from None


def parse_json(bank: BankConfig, body: bytes) -> list[Offer]:
    doc = _json(bank, body)
    try:
        products = doc["products"]
        return [_offer(bank, {
            "product_id": str(p["id"]), "product": p["name"], "product_type": p["type"],
            "apr": float(p["apr"]), "min_amount": p["amount"]["min"],
            "max_amount": p["amount"]["max"], "min_term": p["term_months"]["min"],
            "max_term": p["term_months"]["max"], "upfront_fee": p["fees"]["upfront"],
            "monthly_fee": p["fees"]["monthly"],
            "origination_pct": p["fees"]["origination_pct"],
            "min_income": p["eligibility"]["min_income"], "min_age": p["eligibility"]["min_age"],
            "max_age": p["eligibility"]["max_age"],
            "min_score_band": p["eligibility"]["min_score"]}) for p in products]
    except (KeyError, TypeError, ValueError) as exc:
        raise BankPayloadError(bank.bank_id, f"json product list lacks {exc}") from None


def parse_openbanking_page(bank: BankConfig, body: bytes) -> tuple[list[Offer], str | None]:
    """One page's offers and the next page's URL (None on the last page)."""
    doc = _json(bank, body)
    try:
        offers = []
        for p in doc["Data"]["Product"]:
            fees = {f["FeeType"]: f for f in p["Fees"]}
            offers.append(_offer(bank, {
                "product_id": str(p["ProductId"]), "product": p["ProductName"],
                "product_type": _OB_BACK[p["ProductType"]],
                "apr": float(p["LoanInterest"]["Rate"]),
                "min_amount": float(p["MinimumAmount"]), "max_amount": float(p["MaximumAmount"]),
                "min_term": p["MinimumTermMonths"], "max_term": p["MaximumTermMonths"],
                "upfront_fee": float(fees["Arrangement"]["Amount"]),
                "monthly_fee": float(fees["Servicing"]["Amount"]),
                "origination_pct": float(fees["Origination"]["Rate"]),
                "min_income": float(p["Eligibility"]["MinimumIncome"]),
                "min_age": p["Eligibility"]["AgeRange"][0],
                "max_age": p["Eligibility"]["AgeRange"][1],
                "min_score_band": p["Eligibility"]["CreditScoreBand"]}))
        next_url = doc["Links"]["Next"]
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise BankPayloadError(bank.bank_id, f"open-banking page lacks {exc}") from None
    return offers, next_url


def _number(text: str) -> float:
    return float(text.strip().rstrip("%").replace(" ", "").replace(",", "."))


def parse_csv(bank: BankConfig, body: bytes) -> list[Offer]:
    try:
        rows = list(csv.DictReader(io.StringIO(body.decode("utf-8")), delimiter=";"))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise BankPayloadError(bank.bank_id, f"not CSV: {exc}") from None
    try:
        return [_offer(bank, {
            "product_id": r["product_id"], "product": r["name"], "product_type": r["type"],
            "apr": _number(r["rate"]), "min_amount": _number(r["min_amount"]),
            "max_amount": _number(r["max_amount"]), "min_term": int(r["min_term"]),
            "max_term": int(r["max_term"]), "upfront_fee": _number(r["fee_upfront"]),
            "monthly_fee": _number(r["fee_monthly"]),
            "origination_pct": _number(r["origination"]),
            "min_income": _number(r["min_income"]), "min_age": int(r["age_from"]),
            "max_age": int(r["age_to"]), "min_score_band": r["min_score"]}) for r in rows]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BankPayloadError(bank.bank_id, f"csv row lacks or garbles {exc}") from None
