from typing import Any

from django import forms

from admin_jobs.models import JobKind, JobState
from admin_jobs.selectors import JobFilters
from billing.models import Entity


class JobFilterForm(forms.Form):
    entity = forms.ModelChoiceField(
        queryset=Entity.objects.order_by("name"), required=False, empty_label="All entities"
    )
    kind = forms.ChoiceField(choices=[("", "All kinds"), *JobKind.choices], required=False)
    state = forms.ChoiceField(choices=[("", "All states"), *JobState.choices], required=False)
    date_from = forms.DateField(
        required=False, label="Created from", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        required=False, label="Created to", widget=forms.DateInput(attrs={"type": "date"})
    )
    q = forms.CharField(required=False, max_length=100, label="Search description")

    def filters(self) -> JobFilters:
        """The filters to apply; invalid fields are ignored (and shown with their error)."""
        if not self.is_bound:
            return JobFilters()
        self.is_valid()
        data: dict[str, Any] = self.cleaned_data
        entity = data.get("entity")
        return JobFilters(
            entity_id=entity.pk if entity is not None else None,
            kind=data.get("kind") or "",
            state=data.get("state") or "",
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            search=(data.get("q") or "").strip(),
        )


class JobResolveForm(forms.Form):
    reason = forms.CharField(
        max_length=500,
        label="How was it resolved?",
        widget=forms.TextInput(attrs={"size": 50}),
    )

    def clean_reason(self) -> str:
        reason = str(self.cleaned_data["reason"]).strip()
        if not reason:
            raise forms.ValidationError("Say how the problem was resolved.")
        return reason
