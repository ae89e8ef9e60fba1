"""create_app(settings): wires the store, the driver, the services and the background work."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI

from app.api.body_limit import BodyLimit
from app.api.deps import Services
from app.api.errors import install_error_handlers
from app.api.request_log import RequestLog
from app.api.routers import files, lifecycle, logs, shell, snapshots, ssh, system, tunnels, unsupported
from app.api.routers import ptys as pty_routes
from app.api.tunnel_proxy import TunnelProxy
from app.config import Settings
from app.domain.pool_sizes import parse_pool_sizes
from app.drivers.docker_driver import DockerDriver
from app.drivers.docker_image import default_image_tag
from app.services.agent_channel import AGENT_SOURCE, AgentChannels
from app.services.auth import ApiKeys, load_or_create_key
from app.services.background import BackgroundTasks
from app.services.container_files import ContainerFiles
from app.services.devboxes import ContainerPolicy, DevboxService
from app.services.execution_output import OutputSpool
from app.services.executions import ExecutionService
from app.services.files import FileService
from app.services.health import HealthService
from app.services.lifecycle_timers import LifecycleTimers
from app.services.logs import LogService
from app.services.private_dirs import PrivateDirs
from app.services.ptys import PtyService
from app.services.reconciler import Reconciler
from app.services.snapshots import SnapshotService
from app.services.ssh_gateway import SshGateway
from app.services.startup import StartupWriter
from app.services.status_watch import StatusWatch
from app.services.tunnels import TunnelService
from app.services.warm_pool import WarmPool
from app.store.api_keys import ApiKeyStore
from app.store.database import Database, migrate
from app.store.devboxes import DevboxStore
from app.store.executions import ExecutionStore
from app.store.logs import LogStore
from app.store.snapshots import SnapshotStore
from app.store.ssh_keys import SshKeyStore

log = logging.getLogger("devboxd")
ORPHAN_SWEEP_SECONDS = 60.0


def _api_keys(settings: Settings) -> ApiKeys:
    """Configured keys, or the one kept in the data dir: the server never serves unauthenticated."""
    keys = settings.configured_api_keys
    if not keys:
        key, created = load_or_create_key(settings.data_dir)
        where = settings.data_dir / "api_key"
        print(f"devboxd: {'generated' if created else 'using'} API key from {where}: {key}", flush=True)
        keys = [key]
    return ApiKeys(keys)


async def _build_image(driver: DockerDriver, health: HealthService) -> None:
    health.image_problem = "building (see the server log)"
    try:
        await driver.ensure_default_image(lambda msg: log.info("default image: %s", msg))
        health.image_problem = None
    except Exception as exc:
        log.exception("building the default image failed")
        health.image_problem = f"build failed: {exc}"


async def _reconcile_when_possible(reconciler: Reconciler, snapshots: SnapshotService, driver: DockerDriver) -> None:
    while not await driver.ping():  # noqa: ASYNC110 - polling an external engine, not an in-process event
        await asyncio.sleep(2)
    await reconciler.reconcile()
    await snapshots.recover()


def create_app(settings: Settings) -> FastAPI:
    api_keys = _api_keys(settings)
    secrets = settings.load_secrets()
    database_url = settings.resolved_database_url
    image = settings.default_image or default_image_tag()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(migrate, database_url)
        db = Database(database_url)
        api_keys.use_store(ApiKeyStore(db))
        driver = DockerDriver(threads=settings.docker_threads, host_file_access=settings.host_file_access)
        tasks = BackgroundTasks()
        watch = StatusWatch()
        devbox_store, execution_store, snapshot_store = (
            DevboxStore(db),
            ExecutionStore(db),
            SnapshotStore(db),
        )
        log_store = LogStore(db, on_append=lambda devbox_id: watch.notify(f"logs:{devbox_id}"))
        private_dirs = PrivateDirs(settings.data_dir / "devbox-env", AGENT_SOURCE.read_bytes())
        channels = AgentChannels(driver, private_dirs)
        container_files = ContainerFiles(log_store, driver, channels)
        instance = settings.resolved_instance_id
        startup = StartupWriter(container_files, log_store, driver, settings.git_base_url)
        devboxes = DevboxService(
            devbox_store,
            log_store,
            execution_store,
            driver,
            watch,
            tasks,
            instance,
            image,
            settings.stop_timeout_seconds,
            ContainerPolicy(settings.pids_limit, settings.network, settings.runtime),
            startup,
            secrets,
            private_dirs,
            snapshot_store,
        )
        pool = WarmPool(
            driver,
            channels,
            private_dirs,
            parse_pool_sizes(settings.warm_pool),
            devboxes.pool_container_spec,
            lambda: devboxes.creates_in_flight,
            settings.warm_pool_refill_gap_seconds,
        )
        devboxes.use_pool(pool)
        devboxes.stopped_listeners.append(channels.abandon)
        spool = OutputSpool(settings.data_dir / "executions")
        executions = ExecutionService(devboxes, execution_store, log_store, channels, spool, watch, tasks)
        reconciler = Reconciler(
            devboxes, devbox_store, execution_store, driver, instance, settings.stop_timeout_seconds
        )
        reconciler.held_elsewhere = pool.held
        ptys = PtyService(devboxes, channels, tasks, settings.pty_idle_ttl_seconds)
        snapshot_service = SnapshotService(devboxes, snapshot_store, driver, watch, tasks)
        ssh_gateway = SshGateway(
            devboxes,
            SshKeyStore(db),
            channels,
            tasks,
            settings.data_dir,
            settings.ssh_host,
            settings.ssh_port,
            settings.public_host,
        )
        health = HealthService(db, driver, image)
        app.state.services = Services(
            devboxes=devboxes,
            executions=executions,
            logs=LogService(devboxes, log_store, watch),
            files=FileService(devboxes, container_files),
            snapshots=snapshot_service,
            tunnels=TunnelService(devboxes, devbox_store, driver),
            ptys=ptys,
            ssh=ssh_gateway,
        )
        app.state.health = health
        app.state.status_watch = watch

        if await driver.ping():
            await reconciler.reconcile()
            await snapshot_service.recover()
        else:
            tasks.spawn(_reconcile_when_possible(reconciler, snapshot_service, driver), name="reconcile")
        follower = asyncio.create_task(reconciler.follow_engine_events(), name="engine-events")
        timers = LifecycleTimers(
            devboxes,
            devbox_store,
            lambda: executions.busy_devboxes() | ptys.busy_devboxes() | ssh_gateway.busy_devboxes(),
            settings.timer_tick_seconds,
        )
        timer_task = asyncio.create_task(timers.run(), name="lifecycle-timers")
        pool_task = asyncio.create_task(pool.run(), name="warm-pool")
        sweeper = asyncio.create_task(reconciler.sweep_orphans_forever(ORPHAN_SWEEP_SECONDS), name="orphan-sweep")
        await ssh_gateway.start()
        wants_build = settings.build_image_on_start and not settings.default_image
        if wants_build and await driver.ping() and not await driver.image_exists(image):
            tasks.spawn(_build_image(driver, health), name="build-image")
        log.info("devboxd ready on %s:%s (image %s, instance %s)", settings.host, settings.port, image, instance)
        try:
            yield
        finally:
            for task in (follower, timer_task, pool_task, sweeper):
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
            await pool.close()
            await ssh_gateway.close()
            channels.close_all()
            await tasks.drain(timeout=5)
            driver.close()
            await db.close()

    app = FastAPI(title="devboxd", version="0.1.0", lifespan=lifespan, openapi_url="/openapi.json")
    app.state.api_keys = api_keys
    app.state.settings = settings
    install_error_handlers(app)
    app.include_router(system.router)
    # Routers with fixed paths under /v1/devboxes (e.g. disk_snapshots) must come before the `/{id}` routes.
    app.include_router(snapshots.router)
    app.include_router(lifecycle.router)
    app.include_router(shell.router)
    app.include_router(logs.router)
    app.include_router(files.router)
    app.include_router(tunnels.router)
    app.include_router(pty_routes.router)
    app.include_router(ssh.router)
    app.include_router(unsupported.router)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(TunnelProxy, domain=settings.tunnel_domain)
    app.add_middleware(RequestLog)  # outermost: ids, access log and latency for tunnel traffic too
    return app
