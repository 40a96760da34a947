from decimal import Decimal

from billing import money


def test_tax_is_rounded_per_line_then_summed_like_xero():
    # xero-api-notes.md §8 (ROUND): Xero taxes each line and sums the rounded taxes, so three
    # lines of 25.43 at 15% give 11.43, where taxing the 76.29 total would give 11.44.
    lines = [
        money.line_figures(
            quantity=Decimal("1"),
            unit_price=Decimal(price),
            discount_rate=Decimal("0"),
            tax_rate=Decimal("15"),
            line_amount_type="Exclusive",
        )
        for price in ("25.43", "25.43", "25.43")
    ]
    assert [line.tax_amount for line in lines] == [Decimal("3.81")] * 3
    totals = money.document_totals(lines=lines, line_amount_type="Exclusive")
    assert totals.total_tax == Decimal("11.43")
    assert totals.subtotal == Decimal("76.29")
    assert totals.total == Decimal("87.72")


def test_inclusive_lines_extract_the_tax_from_the_amount():
    line = money.line_figures(
        quantity=Decimal("3"),
        unit_price=Decimal("11.50"),
        discount_rate=Decimal("0"),
        tax_rate=Decimal("15"),
        line_amount_type="Inclusive",
    )
    assert line.line_amount == Decimal("34.50")
    assert line.tax_amount == Decimal("4.50")
    totals = money.document_totals(lines=[line], line_amount_type="Inclusive")
    assert (totals.subtotal, totals.total_tax, totals.total) == (
        Decimal("30.00"),
        Decimal("4.50"),
        Decimal("34.50"),
    )


def test_discount_and_four_decimal_prices_round_half_up_to_the_cent():
    line = money.line_figures(
        quantity=Decimal("7"),
        unit_price=Decimal("1.2345"),
        discount_rate=Decimal("12.5"),
        tax_rate=Decimal("20"),
        line_amount_type="Exclusive",
    )
    # 7 × 1.2345 × 0.875 = 7.5613125 → 7.56; tax 1.512 → 1.51
    assert line.line_amount == Decimal("7.56")
    assert line.tax_amount == Decimal("1.51")


def test_no_tax_lines_carry_no_tax():
    line = money.line_figures(
        quantity=Decimal("2"),
        unit_price=Decimal("5"),
        discount_rate=Decimal("0"),
        tax_rate=Decimal("15"),
        line_amount_type="NoTax",
    )
    assert line.tax_amount == Decimal("0.00")


def test_midpoint_rounds_up():
    assert money.round_money(Decimal("0.125")) == Decimal("0.13")
    assert money.round_money(Decimal("0.135")) == Decimal("0.14")
