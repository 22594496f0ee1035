"""A statement as a PDF (fpdf2): the vendor, the month, each currency's figures, the lines."""
from __future__ import annotations

from fpdf import FPDF

from marketplace.money import exponent

FIGURES = (("opening", "Opening balance", 1), ("sales", "Sales", 1), ("platform_fees", "Platform fees", -1),
           ("refunds", "Refunds", -1), ("disputes", "Disputes", -1), ("payouts", "Payouts", -1),
           ("closing", "Closing balance", 1))
KIND_LABELS = {"sale": "Sale", "platform_fee": "Platform fee", "refund": "Refund", "dispute": "Dispute",
               "payout": "Payout"}


def format_amount(amount: int, currency: str) -> str:
    """`1,234.56 USD`, `1,234 JPY`, `1.230 KWD`: minor units shown with the currency's exponent."""
    places = exponent(currency)
    sign, units = ("-" if amount < 0 else ""), abs(amount)
    whole, minor = divmod(units, 10 ** places)
    decimals = f".{minor:0{places}d}" if places else ""
    return f"{sign}{whole:,}{decimals} {currency.upper()}"


def render(statement: dict) -> bytes:
    """The statement's PDF bytes."""
    pdf = FPDF(format="A4")
    pdf.set_title(f"Statement {statement['vendor_id']} {statement['month']}")
    pdf.add_page()
    _heading(pdf, statement)
    for balance in statement["balances"]:
        _balance(pdf, balance)
    if not statement["balances"]:
        pdf.cell(0, 6, "No balance in any currency.", new_x="LMARGIN", new_y="NEXT")
    _lines(pdf, statement["lines"])
    return bytes(pdf.output())


def _heading(pdf: FPDF, statement: dict) -> None:
    pdf.set_font("Helvetica", "B", 16)
    pdf.cell(0, 10, f"Statement for {statement['month']}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    period = statement["period"]
    for text in (f"Vendor: {statement['vendor_name']} ({statement['vendor_id']})",
                 f"Month: {statement['month']} (UTC, {period['start']} to {period['end']})"):
        pdf.cell(0, 6, _latin1(text), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)


def _balance(pdf: FPDF, balance: dict) -> None:
    currency = balance["currency"]
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 8, currency.upper(), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=10)
    for name, label, sign in FIGURES:
        shown = balance[name] if sign > 0 or balance[name] == 0 else -balance[name]
        pdf.cell(120, 6, label)
        pdf.cell(0, 6, format_amount(shown, currency), align="R", new_x="LMARGIN", new_y="NEXT")
    if balance["credits"]:
        pdf.cell(0, 6, f"Sales include {format_amount(balance['credits'], currency)} given back from earlier "
                       "months (won disputes, failed refunds or payouts).", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)


def _lines(pdf: FPDF, lines: list[dict]) -> None:
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 8, "Lines", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", size=8)
    if not lines:
        pdf.cell(0, 6, "No activity this month.", new_x="LMARGIN", new_y="NEXT")
        return
    with pdf.table(col_widths=(33, 20, 27, 52, 58), text_align=("LEFT", "LEFT", "RIGHT", "LEFT", "LEFT")) as table:
        table.row(("Date (UTC)", "Kind", "Amount", "Order / payout", "Stripe id"))
        for line in lines:
            table.row((line["at"], KIND_LABELS.get(line["kind"], line["kind"]),
                       format_amount(line["amount"], line["currency"]),
                       line["order_id"] or line["payout_id"] or "", line["stripe_id"] or ""))


def _latin1(text: str) -> str:
    """The core fonts are Latin-1: other characters are shown as '?' rather than failing."""
    return text.encode("latin-1", "replace").decode("latin-1")
