"""The Django admin: projects, versions, builds, files, ABIs and builders.

Registered here, Project and Version included, because their actions (rebuild, skip,
unskip) call builds.queue, and imports point one way: packages <- builds.

At full scale (700,000 projects, millions of versions, builds and files) no list counts
a whole table (PostgreSQL's estimate, or a count bounded at 10,000 for a filtered list),
no filter lists the rows of a big table, foreign keys are raw ids, and searches use the
indexes (name prefixes, exact names, ids). Every action is logged with who and when.
"""
import secrets

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.core.paginator import Paginator
from django.db import connection, transaction
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from packaging.utils import canonicalize_name

from builds import depwait, queue, storage, withdraw
from builds.models import Abi, Build, Builder, BuilderPackages, BuildLog, File, hash_token
from lib.counts import EXACT_COUNT_BELOW, table_estimate
from packages.models import Project, Retry, Version

# The admin's own words, not Django's stock "Django administration".
admin.site.site_header = "piwheels farm administration"
admin.site.site_title = "piwheels admin"
admin.site.index_title = "The farm"

# Past this many rows a filtered list says "10,000" rather than counting on.
COUNT_BOUND = 10_000


class EstimatedCountPaginator(Paginator):
    """Pages without COUNT(*) over a huge table: the planner's estimate for an
    unfiltered list of a big table, else an exact count bounded at COUNT_BOUND."""

    @cached_property
    def count(self):
        queryset = self.object_list
        if not queryset.query.where:
            estimate = table_estimate(connection, queryset.model._meta.db_table)
            if estimate >= EXACT_COUNT_BELOW:
                return estimate
        return queryset.order_by()[:COUNT_BOUND].count()


class ScaleSafeAdmin(admin.ModelAdmin):
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50


class SkippedFilter(admin.SimpleListFilter):
    title = "skipped"
    parameter_name = "skipped"

    def lookups(self, request, model_admin):
        return [("yes", "skipped"), ("no", "not skipped")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(skip_reason="")
        if self.value() == "no":
            return queryset.filter(skip_reason="")
        return queryset


# ---------------------------------------------------------------- action forms


class RebuildForm(forms.Form):
    abi = forms.ChoiceField(label="ABI", required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        tags = Abi.objects.filter(active=True).order_by("tag").values_list("tag", flat=True)
        self.fields["abi"].choices = [("", "every active ABI")] + [(t, t) for t in tags]


class WithdrawForm(forms.Form):
    since = forms.DateTimeField(
        help_text="Everything the builder published from this time on leaves the index "
                  "and its jobs are queued again (e.g. 2026-12-01 08:00, UTC).")


class SkipForm(forms.Form):
    reason = forms.CharField(max_length=400, help_text="Shown on the project page.")


def form_action(modeladmin, request, queryset, form_class, title, apply):
    """An action that first asks for a form (an ABI, a reason), then applies it."""
    if "apply" in request.POST:
        form = form_class(request.POST)
        if form.is_valid():
            apply(form.cleaned_data)
            return None  # back to the list
    else:
        form = form_class()
    return TemplateResponse(request, "admin/builds/action_form.html", {
        **modeladmin.admin_site.each_context(request),
        "title": title,
        "form": form,
        "opts": modeladmin.model._meta,
        "objects": list(queryset[:20]),
        "more": max(queryset.order_by()[:COUNT_BOUND].count() - 20, 0),
        "action": request.POST.get("action", ""),
        "selected": request.POST.getlist(ACTION_CHECKBOX_NAME),
        "select_across": request.POST.get("select_across", "0"),
    })


def rebuild_action(modeladmin, request, queryset, targets):
    """Queue rebuilds of TARGETS (a list of Versions, or Projects one by one)."""

    def apply(data):
        abi = data["abi"] or None
        who = request.user.get_username()
        queued = 0
        for target, objs in targets:
            queued += queue.rebuild(target, abi=abi, requested_by=who)
            for obj in objs:
                modeladmin.log_change(
                    request, obj, f"Rebuild requested for {abi or 'every active ABI'}")
        modeladmin.message_user(
            request, f"{queued} builds queued for {abi or 'every active ABI'}", messages.SUCCESS
        )

    return form_action(modeladmin, request, queryset, RebuildForm, "Rebuild", apply)


def set_skip(modeladmin, request, objs, version_ids, reason):
    """Set (or clear, with reason "") skip_reason on OBJS and bring the queue in step."""
    ids = [obj.id for obj in objs]
    with transaction.atomic():
        type(objs[0]).objects.filter(id__in=ids).update(skip_reason=reason)
        created, dropped = queue.refresh_jobs(version_ids)
        for obj in objs:
            modeladmin.log_change(request, obj, f"Skipped: {reason}" if reason else "Unskipped")
    if reason:
        text = (f"skipped {len(objs)} {objs[0]._meta.verbose_name_plural}: "
                f"{dropped} queued builds dropped")
    else:
        text = f"unskipped {len(objs)} {objs[0]._meta.verbose_name_plural}: {created} builds queued"
    modeladmin.message_user(request, text, messages.SUCCESS)


# ---------------------------------------------------------------- projects and versions


@admin.register(Project)
class ProjectAdmin(ScaleSafeAdmin):
    list_display = ["name", "normalized_name", "skip_reason", "last_changed", "added"]
    list_filter = [SkippedFilter]
    search_fields = ["normalized_name"]
    search_help_text = "The start of a project name (any spelling)."
    readonly_fields = ["name", "normalized_name", "added", "last_changed", "serial",
                       "index_serial", "project_page"]
    fields = ["name", "normalized_name", "summary", "skip_reason", "added", "last_changed",
              "serial", "index_serial", "project_page"]
    actions = ["rebuild", "skip", "unskip"]

    def get_search_results(self, request, queryset, search_term):
        name = canonicalize_name(search_term.strip())
        if name:
            queryset = queryset.filter(normalized_name__startswith=name)
        return queryset, False

    @admin.display(description="page")
    def project_page(self, obj):
        url = reverse("web-project", args=[obj.normalized_name])
        return format_html('<a href="{}">{}</a>', url, url)

    def has_add_permission(self, request):
        return False  # projects come from upstream: add_package NAME

    def has_delete_permission(self, request, obj=None):
        return False  # remove_package NAME also deletes the files

    def save_model(self, request, obj, form, change):
        # One transaction: a skip saved is a queue refreshed, or neither.
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            if "skip_reason" in form.changed_data:
                queue.refresh_jobs(obj.versions.values_list("id", flat=True))

    @admin.action(description="Rebuild selected projects", permissions=["change"])
    def rebuild(self, request, queryset):
        projects = list(queryset)
        return rebuild_action(self, request, queryset, [(p, [p]) for p in projects])

    @admin.action(description="Skip selected projects (asks for a reason)",
                  permissions=["change"])
    def skip(self, request, queryset):
        def apply(data):
            projects = list(queryset)
            ids = Version.objects.filter(project__in=projects).values_list("id", flat=True)
            set_skip(self, request, projects, list(ids), data["reason"])

        return form_action(self, request, queryset, SkipForm, "Skip projects", apply)

    @admin.action(description="Unskip selected projects", permissions=["change"])
    def unskip(self, request, queryset):
        projects = list(queryset)
        ids = Version.objects.filter(project__in=projects).values_list("id", flat=True)
        set_skip(self, request, projects, list(ids), "")


@admin.register(Version)
class VersionAdmin(ScaleSafeAdmin):
    list_display = ["__str__", "released", "has_sdist", "yanked", "skip_reason", "removed"]
    list_select_related = ["project"]
    list_filter = [SkippedFilter, "yanked", "removed", "has_sdist"]
    search_fields = ["project__normalized_name"]
    search_help_text = "A project's exact name, optionally followed by the start of a version."
    raw_id_fields = ["project"]
    readonly_fields = ["project", "version", "released", "yanked", "yanked_reason",
                       "requires_python", "has_sdist", "removed"]
    actions = ["rebuild", "skip", "unskip"]

    def get_search_results(self, request, queryset, search_term):
        name, _, version = search_term.strip().partition(" ")
        if name:
            queryset = queryset.filter(project__normalized_name=canonicalize_name(name))
        if version.strip():
            queryset = queryset.filter(version__startswith=version.strip())
        return queryset, False

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False  # remove_package NAME VERSION also deletes the files

    def save_model(self, request, obj, form, change):
        with transaction.atomic():  # as for a project: the skip and its queue together
            super().save_model(request, obj, form, change)
            if "skip_reason" in form.changed_data:
                queue.refresh_jobs([obj.id])

    @admin.action(description="Rebuild selected versions", permissions=["change"])
    def rebuild(self, request, queryset):
        versions = list(queryset)
        return rebuild_action(self, request, queryset, [(versions, versions)])

    @admin.action(description="Skip selected versions (asks for a reason)",
                  permissions=["change"])
    def skip(self, request, queryset):
        def apply(data):
            versions = list(queryset)
            set_skip(self, request, versions, [v.id for v in versions], data["reason"])

        return form_action(self, request, queryset, SkipForm, "Skip versions", apply)

    @admin.action(description="Unskip selected versions", permissions=["change"])
    def unskip(self, request, queryset):
        versions = list(queryset)
        set_skip(self, request, versions, [v.id for v in versions], "")


# ---------------------------------------------------------------- builds and files


class CauseFilter(admin.SimpleListFilter):
    """Failed builds by cause, most first, with their counts (depwait.overview())."""

    title = "cause of failure"
    parameter_name = "cause"

    def lookups(self, request, model_admin):
        return [(row["cause"], f"{row['cause']} ({row['builds']})")
                for row in depwait.overview()["causes"]]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(state=Build.State.FAILED, cause=self.value())
        return queryset


class BuilderFilter(admin.SimpleListFilter):
    """Builds or files of one builder (builders are few): what it built and published."""

    title = "builder"
    parameter_name = "builder"
    path = "builder"

    def lookups(self, request, model_admin):
        return [(str(i), n) for i, n in Builder.objects.order_by("name").values_list("id", "name")]

    def queryset(self, request, queryset):
        if self.value() and self.value().isdigit():
            return queryset.filter(**{f"{self.path}_id": int(self.value())})
        return queryset


class FileBuilderFilter(BuilderFilter):
    path = "build__builder"


class WaitingForFilter(admin.SimpleListFilter):
    """The Debian packages to install on the builders, by how many builds each fixes."""

    title = "waiting for Debian package (install on the builders)"
    parameter_name = "waiting_for"

    def lookups(self, request, model_admin):
        return [(row["package"], f"{row['package']} ({row['builds']} builds: "
                                 f"{', '.join(row['where'])})")
                for row in depwait.overview()["packages"]]

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(state=Build.State.FAILED, waiting_for=self.value())
        return queryset


@admin.register(Build)
class BuildAdmin(ScaleSafeAdmin):
    # Few columns, so that why a build failed or was skipped fits at 1280 px; the
    # builder, priority, duration and who asked are on each build's page.
    list_display = ["id", "version", "abi", "arch", "state", "finished", "cause", "why"]
    list_select_related = ["version__project", "abi", "builder"]
    list_filter = ["state", "abi", "priority", CauseFilter, WaitingForFilter, BuilderFilter]
    search_fields = ["id"]
    search_help_text = "A build id, or a project's exact name optionally followed by a version."
    raw_id_fields = ["version", "builder"]
    readonly_fields = ["version", "abi", "arch", "builder", "state", "priority", "attempt",
                       "created", "started", "finished", "duration", "lease_until",
                       "failure_reason", "skip_reason", "requested_by", "os_release", "glibc",
                       "cause", "cause_detail", "apt", "waiting_for", "output_tail"]

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if term.isdigit():
            return queryset.filter(id=int(term)), False
        name, _, version = term.partition(" ")
        if name:
            queryset = queryset.filter(version__project__normalized_name=canonicalize_name(name))
        if version.strip():
            queryset = queryset.filter(version__version=version.strip())
        return queryset, False

    def has_add_permission(self, request):
        return False  # builds are queued by the farm, or by the Rebuild action

    @admin.display(description="why")
    def why(self, obj):
        """The failure's detail and reason, or the skip's reason, in one column."""
        parts = [obj.cause_detail, obj.failure_reason, obj.skip_reason]
        if obj.waiting_for:
            parts.append(f"waiting for {obj.waiting_for}")
        return " · ".join(p for p in dict.fromkeys(parts) if p) or "-"

    @admin.display(description="output")
    def output_tail(self, obj):
        row = BuildLog.objects.filter(build=obj).values_list("output", "truncated").first()
        if row is None:
            return "no output"
        output, truncated = row
        tail = output[-5000:]
        return format_html(
            '<a href="{}">full log</a> ({} characters{}){}<pre style="white-space: '
            'pre-wrap; max-height: 30em; overflow: auto">{}</pre>',
            reverse("web-log", args=[obj.id]), len(output), ", start cut" if truncated else "",
            ", the end:" if len(tail) < len(output) else "", tail,
        )

    def delete_model(self, request, obj):
        self.delete_queryset(request, Build.objects.filter(id=obj.id))

    def delete_queryset(self, request, queryset):
        """Delete the builds, their files on disk, and move their projects' index on."""
        delete_with_stored_files(queryset, "files__", "version__project__")


def delete_with_stored_files(queryset, to_file, to_project):
    """Delete QUERYSET's rows (builds or files) in one transaction that moves their
    projects' index on, then their files' bytes once it commits. TO_FILE and TO_PROJECT
    are the lookup paths from a row to its File and its Project."""
    files = list(queryset.values_list(
        f"{to_file}filename", f"{to_project}normalized_name", f"{to_project}id"
    ))
    with transaction.atomic():
        queryset.delete()
        Project.objects.filter(id__in={pid for _, _, pid in files}).touch_index(root=True)
        transaction.on_commit(lambda: [
            storage.delete_files(name, [filename]) for filename, name, _ in files if filename
        ])


@admin.register(File)
class FileAdmin(ScaleSafeAdmin):
    list_display = ["filename", "build", "size", "downloads", "uploaded", "superseded_by",
                    "shadowed_by"]
    list_select_related = ["build"]
    list_filter = [FileBuilderFilter]
    search_fields = ["filename"]
    search_help_text = "A file's exact name, or a project's exact name."
    raw_id_fields = ["build"]
    readonly_fields = [f.name for f in File._meta.fields if f.name != "id"]

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if term.endswith(".whl"):
            return queryset.filter(filename=term), False
        if term:
            queryset = queryset.filter(
                build__version__project__normalized_name=canonicalize_name(term)
            )
        return queryset, False

    def has_add_permission(self, request):
        return False  # import_wheels FILE adds wheels built elsewhere

    def delete_model(self, request, obj):
        self.delete_queryset(request, File.objects.filter(id=obj.id))

    def delete_queryset(self, request, queryset):
        """Delete the files' rows and their bytes, and move their projects' index on."""
        delete_with_stored_files(queryset, "", "build__version__project__")


# ---------------------------------------------------------------- ABIs and builders


@admin.register(Retry)
class RetryAdmin(admin.ModelAdmin):
    """Projects the sync could not fetch; every pass asks for them again. Read only:
    deleting a row only stops the retries."""
    list_display = ["name", "attempts", "since", "reason"]
    search_fields = ["normalized_name"]
    readonly_fields = ["normalized_name", "name", "reason", "attempts", "since"]

    def has_add_permission(self, request):
        return False


@admin.register(Abi)
class AbiAdmin(admin.ModelAdmin):
    list_display = ["tag", "active", "os_release", "archs", "added"]
    list_filter = ["active"]
    fields = ["tag", "active", "os_release", "archs", "added"]

    def has_add_permission(self, request):
        return False  # add_abi TAG also queues the backlog

    def has_delete_permission(self, request, obj=None):
        return False  # builds refer to it: deactivate it instead


@admin.register(Builder)
class BuilderAdmin(admin.ModelAdmin):
    list_display = ["name", "enabled", "abi", "platform", "python_version", "os_release",
                    "glibc", "last_seen", "published"]
    list_filter = ["enabled"]
    search_fields = ["name"]
    fields = ["name", "enabled", "abi", "platform", "python_version", "os", "os_release",
              "glibc", "created", "last_seen"]
    readonly_fields = ["abi", "platform", "python_version", "os", "os_release", "glibc",
                       "created", "last_seen"]
    actions = ["disable", "enable", "rotate_token", "withdraw"]

    @admin.display(description="what it built")
    def published(self, obj):
        return format_html(
            '<a href="{}?builder={}">builds</a> · <a href="{}?builder={}">files</a>',
            reverse("admin:builds_build_changelist"), obj.id,
            reverse("admin:builds_file_changelist"), obj.id,
        )

    @admin.action(description="Withdraw everything selected builders published since ...",
                  permissions=["change"])
    def withdraw(self, request, queryset):
        builders = list(queryset)

        def apply(data):
            who = request.user.get_username()
            for builder in builders:
                done = withdraw.withdraw_builder(builder, data["since"], timezone.now(), by=who)
                self.log_change(
                    request, builder,
                    f"Withdrew {len(done.files)} files published since "
                    f"{data['since'].isoformat()}: {' '.join(done.files)}"[:2000],
                )
                self.message_user(
                    request,
                    f"withdrew {len(done.files)} files {builder.name} published since "
                    f"{data['since']:%Y-%m-%d %H:%M}; {done.requeued} jobs queued again",
                    messages.SUCCESS,
                )

        return form_action(self, request, queryset, WithdrawForm,
                           "Withdraw what they published", apply)

    def save_model(self, request, obj, form, change):
        if not change:
            token = secrets.token_urlsafe(32)
            obj.token_hash = hash_token(token)
        super().save_model(request, obj, form, change)
        if not change:
            self.message_user(request, f"API token of {obj.name} (shown only now): {token}",
                              messages.WARNING)

    @admin.action(description="Disable selected builders", permissions=["change"])
    def disable(self, request, queryset):
        builders = list(queryset)
        requeued = queue.disable_builders([b.id for b in builders])
        for builder in builders:
            self.log_change(request, builder, "Disabled")
        self.message_user(
            request, f"disabled {len(builders)} builders; {requeued} jobs they held requeued",
            messages.SUCCESS,
        )

    @admin.action(description="Enable selected builders", permissions=["change"])
    def enable(self, request, queryset):
        builders = list(queryset)
        Builder.objects.filter(id__in=[b.id for b in builders]).update(enabled=True)
        for builder in builders:
            self.log_change(request, builder, "Enabled")
        self.message_user(request, f"enabled {len(builders)} builders", messages.SUCCESS)

    @admin.action(description="Rotate the API token of selected builders",
                  permissions=["change"])
    def rotate_token(self, request, queryset):
        for builder in queryset:
            token = secrets.token_urlsafe(32)
            Builder.objects.filter(id=builder.id).update(token_hash=hash_token(token))
            self.log_change(request, builder, "Rotated the API token")
            self.message_user(
                request, f"new API token of {builder.name} (shown only now): {token}",
                messages.WARNING,
            )


@admin.register(BuilderPackages)
class BuilderPackagesAdmin(admin.ModelAdmin):
    """What each builder last reported installed (dep-wait reads it); read-only."""

    list_display = ["builder", "os_release", "package_count", "updated"]
    list_select_related = ["builder"]
    readonly_fields = ["builder", "os_release", "digest", "packages", "updated"]

    @admin.display(description="packages")
    def package_count(self, obj):
        return len(obj.names())

    def has_add_permission(self, request):
        return False
