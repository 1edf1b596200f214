# SPDX-License-Identifier: MIT
"""Protobuf by hand, for the hostile-peer suite.

A small encoder (varints, length-delimited fields, fixed 32/64-bit) and
decoder, and builders for the hfleet messages the suite sends, with the
field numbers of proto/hfleet.proto.  Nothing here checks what it encodes:
the point is to be able to write any byte sequence a hostile peer could,
including ones that no protobuf library would produce (bad varints, wrong
wire types, lengths past the end, unknown groups nested deep).

Builders take keyword arguments named after the proto fields and return
the encoded bytes; a value of None leaves the field out, a list repeats it.
"""
import os
import re
import struct

# Wire types
VARINT, FIXED64, LEN, SGROUP, EGROUP, FIXED32 = 0, 1, 2, 3, 4, 5


def _protocol_version():
    """The protocol version this build speaks (common/hf_proto.h)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'common', 'hf_proto.h')
    with open(path) as f:
        return int(re.search(r'#define HF_PROTOCOL_VERSION (\d+)', f.read()).group(1))


PROTOCOL_VERSION = _protocol_version()

# Enums (proto/hfleet.proto)
BACKEND = {'cpu': 1, 'cuda': 2, 'rocm': 3, 'mps': 4, 'openvino': 5, 'qnn': 6}
KIND_TEST, KIND_BENCHMARK = 1, 2
STATUS = {'unspecified': 0, 'queued': 1, 'leased': 2, 'running': 3, 'passed': 4, 'failed': 5,
          'error': 6, 'timeout': 7, 'skipped': 8, 'cancelled': 9}
ERR_NONE, ERR_BAD_REQUEST, ERR_UNKNOWN_MODEL, ERR_NOT_FOUND, ERR_VERSION, ERR_UNAVAILABLE, \
    ERR_INTERNAL, ERR_NOT_REGISTERED, ERR_UNSATISFIABLE = range(9)
ERR_UNAUTHENTICATED, ERR_FORBIDDEN, ERR_ID_IN_USE, ERR_WRONG_PORT = range(9, 13)
ERROR_NAMES = ['ERR_NONE', 'ERR_BAD_REQUEST', 'ERR_UNKNOWN_MODEL', 'ERR_NOT_FOUND', 'ERR_VERSION',
               'ERR_UNAVAILABLE', 'ERR_INTERNAL', 'ERR_NOT_REGISTERED', 'ERR_UNSATISFIABLE',
               'ERR_UNAUTHENTICATED', 'ERR_FORBIDDEN', 'ERR_ID_IN_USE', 'ERR_WRONG_PORT']

# Envelope body field numbers
ENVELOPE = {
    'register': 10, 'register_reply': 11, 'poll': 12, 'poll_reply': 13, 'results': 14, 'ack': 15,
    'error': 16, 'health_report': 17, 'submit': 20, 'submit_reply': 21, 'job_status': 22,
    'job_status_reply': 23, 'job_list': 24, 'job_list_reply': 25, 'results_request': 26,
    'results_reply': 27, 'cancel': 28, 'cancel_reply': 29, 'workers': 30, 'workers_reply': 31,
    'models': 32, 'models_reply': 33, 'devices': 34, 'devices_reply': 35, 'retry': 36,
    'retry_reply': 37, 'drain': 38, 'drain_reply': 39, 'explain': 40, 'explain_reply': 41,
}
ENVELOPE_NAMES = dict((v, k) for k, v in ENVELOPE.items())


# ---- encoding ----

def varint(n):
    """n as a varint; negative numbers as protobuf encodes int32/int64
    (ten bytes, two's complement)."""
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7f
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def key(field, wire_type):
    return varint((field << 3) | wire_type)


def as_bytes(v):
    if isinstance(v, str):
        return v.encode('utf-8', 'surrogateescape')
    return bytes(v)


def f_varint(field, n):
    return key(field, VARINT) + varint(int(n))


def f_bool(field, b):
    return f_varint(field, 1 if b else 0)


def f_len(field, data):
    data = as_bytes(data)
    return key(field, LEN) + varint(len(data)) + data


def f_double(field, x):
    return key(field, FIXED64) + struct.pack('<d', x)


def f_float(field, x):
    return key(field, FIXED32) + struct.pack('<f', x)


def fields(spec, **kw):
    """Encodes kw by spec: name -> (field number, kind), kind one of
    'varint', 'bool', 'len' (string, bytes or an encoded message),
    'double', 'float'.  A list value repeats the field; None leaves it out;
    bytes given for a 'raw' name are appended as they are."""
    out = bytearray()
    for name, value in kw.items():
        if value is None:
            continue
        if name == 'raw':
            out += value
            continue
        num, kind = spec[name]
        for v in (value if isinstance(value, (list, tuple)) else [value]):
            if kind == 'varint':
                out += f_varint(num, v)
            elif kind == 'bool':
                out += f_bool(num, v)
            elif kind == 'len':
                out += f_len(num, v)
            elif kind == 'double':
                out += f_double(num, v)
            elif kind == 'float':
                out += f_float(num, v)
            else:
                raise ValueError(kind)
    return bytes(out)


def packed(values):
    """A packed repeated varint field's payload."""
    return b''.join(varint(v) for v in values)


# ---- messages (field numbers from proto/hfleet.proto) ----

def key_value(k, v):
    return f_len(1, k) + f_len(2, v)


def device(backend=1, index=0, name='cpu', memory_bytes=None, arch=None, driver=None, uuid=None,
           slots=None, attrs=None, declared=None, raw=None):
    return fields({'backend': (1, 'varint'), 'index': (2, 'varint'), 'name': (3, 'len'),
                   'memory_bytes': (4, 'varint'), 'arch': (5, 'len'), 'driver': (6, 'len'),
                   'uuid': (7, 'len'), 'slots': (8, 'varint'), 'attrs': (9, 'len'),
                   'declared': (10, 'bool')},
                  backend=backend, index=index, name=name, memory_bytes=memory_bytes, arch=arch,
                  driver=driver, uuid=uuid, slots=slots, attrs=attrs, declared=declared, raw=raw)


def cpu_info(model='hostile', sockets=1, cores=1, threads=1, memory_bytes=1 << 30, flags=None,
             numa_nodes=None, arch='x86_64'):
    return fields({'model': (1, 'len'), 'sockets': (2, 'varint'), 'cores': (3, 'varint'),
                   'threads': (4, 'varint'), 'memory_bytes': (5, 'varint'), 'flags': (6, 'len'),
                   'numa_nodes': (7, 'varint'), 'arch': (8, 'len')},
                  model=model, sockets=sockets, cores=cores, threads=threads, memory_bytes=memory_bytes,
                  flags=flags, numa_nodes=numa_nodes, arch=arch)


def task_ref(task_id, attempt):
    return f_varint(1, task_id) + f_varint(2, attempt)


def register(worker_id='hostile', hostname='hostile.example', software_version='hostile-1',
             protocol_version=PROTOCOL_VERSION, labels=None, devices=None, runtimes=None, cpu=None, running=None,
             backends=None, cached_models=None, leases_ahead=None, raw=None):
    if devices is None:
        devices = [device()]
    return fields({'worker_id': (1, 'len'), 'hostname': (2, 'len'), 'software_version': (3, 'len'),
                   'protocol_version': (4, 'varint'), 'labels': (5, 'len'), 'devices': (6, 'len'),
                   'runtimes': (7, 'len'), 'cpu': (8, 'len'), 'running': (9, 'len'),
                   'backends': (10, 'len'), 'cached_models': (11, 'len'), 'leases_ahead': (13, 'bool')},
                  worker_id=worker_id, hostname=hostname, software_version=software_version,
                  protocol_version=protocol_version, labels=labels, devices=devices, runtimes=runtimes,
                  cpu=cpu, running=running, backends=backends, cached_models=cached_models,
                  leases_ahead=leases_ahead, raw=raw)


def device_free(backend=1, index=0, free_slots=1, ahead=None, queued=None, ahead_benchmarks=None):
    out = f_varint(1, backend) + f_varint(2, index) + f_varint(3, free_slots)
    return out + (f_varint(4, ahead) if ahead is not None else b'') + \
        (f_varint(5, queued) if queued is not None else b'') + \
        (f_varint(6, int(ahead_benchmarks)) if ahead_benchmarks is not None else b'')


def telemetry(backend=1, index=0, utilization_pct=None, memory_used_bytes=None, temperature_c=None,
              power_w=None):
    return fields({'backend': (1, 'varint'), 'index': (2, 'varint'), 'utilization_pct': (3, 'float'),
                   'memory_used_bytes': (4, 'varint'), 'temperature_c': (5, 'float'),
                   'power_w': (6, 'float')},
                  backend=backend, index=index, utilization_pct=utilization_pct,
                  memory_used_bytes=memory_used_bytes, temperature_c=temperature_c, power_w=power_w)


def poll(worker_id='hostile', free=None, running=None, draining=None, telemetry=None, session=None, hold_ms=None,
         replaces_held=None, raw=None):
    return fields({'worker_id': (1, 'len'), 'free': (2, 'len'), 'running': (3, 'len'),
                   'draining': (4, 'bool'), 'telemetry': (5, 'len'), 'session': (6, 'varint'),
                   'hold_ms': (7, 'varint'), 'replaces_held': (8, 'bool')},
                  worker_id=worker_id, free=free, running=running, draining=draining,
                  telemetry=telemetry, session=session, hold_ms=hold_ms, replaces_held=replaces_held,
                  raw=raw)


def task_result(task_id=1, attempt=1, status=4, reason=None, metrics_json=None, env_json=None,
                log_excerpt=None, started_at=None, finished_at=None, exit_code=None, device_index=None,
                weights=None, infrastructure=None, raw=None):
    return fields({'task_id': (1, 'varint'), 'attempt': (2, 'varint'), 'status': (3, 'varint'),
                   'reason': (4, 'len'), 'metrics_json': (5, 'len'), 'env_json': (6, 'len'),
                   'log_excerpt': (7, 'len'), 'started_at': (8, 'double'), 'finished_at': (9, 'double'),
                   'exit_code': (10, 'varint'), 'device_index': (11, 'varint'), 'weights': (12, 'len'),
                   'infrastructure': (13, 'bool')},
                  task_id=task_id, attempt=attempt, status=status, reason=reason,
                  metrics_json=metrics_json, env_json=env_json, log_excerpt=log_excerpt,
                  started_at=started_at, finished_at=finished_at, exit_code=exit_code,
                  device_index=device_index, weights=weights, infrastructure=infrastructure, raw=raw)


def result_batch(worker_id='hostile', results=(), session=None):
    out = f_len(1, worker_id) + b''.join(f_len(2, r) for r in results)
    return out + (f_varint(3, session) if session is not None else b'')


def health_result(backend=1, index=0, ok=True, detail='fine', duration_s=0.1, checked_at=1.7e9,
                  trigger='periodic'):
    return fields({'backend': (1, 'varint'), 'index': (2, 'varint'), 'ok': (3, 'bool'),
                   'detail': (4, 'len'), 'duration_s': (5, 'double'), 'checked_at': (6, 'double'),
                   'trigger': (7, 'len')},
                  backend=backend, index=index, ok=ok, detail=detail, duration_s=duration_s,
                  checked_at=checked_at, trigger=trigger)


def health_report(worker_id='hostile', results=(), session=None):
    out = f_len(1, worker_id) + b''.join(f_len(2, r) for r in results)
    return out + (f_varint(3, session) if session is not None else b'')


SUBMIT_SPEC = {
    'models': (1, 'len'), 'families': (2, 'len'), 'all_models': (3, 'bool'), 'backends': (4, 'varint'),
    'kinds': (5, 'varint'), 'batch_sizes': (6, 'varint'), 'precisions': (7, 'len'),
    'priority': (8, 'varint'), 'submitter': (9, 'len'), 'seq_len': (10, 'varint'),
    'timeout_s': (11, 'varint'), 'iterations': (12, 'varint'), 'warmup': (13, 'varint'),
    'name': (14, 'len'), 'min_memory_bytes': (15, 'varint'), 'min_compute_capability': (16, 'len'),
    'gfx_targets': (17, 'len'), 'labels': (18, 'len'), 'runtimes': (19, 'len'),
    'devices_per_task': (20, 'varint'), 'allow_waiting': (21, 'bool'), 'max_running': (22, 'varint'),
    'max_retries': (23, 'varint'), 'flaky_reruns': (24, 'varint'), 'request_id': (25, 'len'),
    'seq_lens': (26, 'varint'), 'suite': (27, 'len'),
}


def submit(**kw):
    kw.setdefault('submitter', 'hostile')
    return fields(SUBMIT_SPEC, **kw)


def cancel(job_id=0, task_id=None):
    return fields({'job_id': (1, 'varint'), 'task_id': (2, 'varint')}, job_id=job_id, task_id=task_id)


def drain(worker_id='', one_device=None, backend=None, index=None, undrain=None):
    return fields({'worker_id': (1, 'len'), 'one_device': (2, 'bool'), 'backend': (3, 'varint'),
                   'index': (4, 'varint'), 'undrain': (5, 'bool')},
                  worker_id=worker_id, one_device=one_device, backend=backend, index=index,
                  undrain=undrain)


def envelope(body_name, body=b'', protocol_version=PROTOCOL_VERSION):
    """An Envelope with one body (by name, or a field number for one that
    does not exist)."""
    num = ENVELOPE[body_name] if isinstance(body_name, str) else body_name
    out = b''
    if protocol_version is not None:
        out += f_varint(1, protocol_version)
    return out + f_len(num, body)


# ---- decoding ----

class DecodeError(Exception):
    pass


def read_varint(buf, pos):
    shift = result = 0
    while True:
        if pos >= len(buf):
            raise DecodeError('truncated varint')
        b = buf[pos]
        pos += 1
        result |= (b & 0x7f) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise DecodeError('varint too long')


def decode(buf):
    """Every field of one message: a list of (field number, wire type,
    value); a varint as an int, a fixed one as its raw bytes, a
    length-delimited one as bytes."""
    out, pos = [], 0
    while pos < len(buf):
        k, pos = read_varint(buf, pos)
        num, wt = k >> 3, k & 7
        if wt == VARINT:
            v, pos = read_varint(buf, pos)
        elif wt == FIXED64:
            v, pos = bytes(buf[pos:pos + 8]), pos + 8
        elif wt == FIXED32:
            v, pos = bytes(buf[pos:pos + 4]), pos + 4
        elif wt == LEN:
            n, pos = read_varint(buf, pos)
            if pos + n > len(buf):
                raise DecodeError('length past the end')
            v, pos = bytes(buf[pos:pos + n]), pos + n
        else:
            raise DecodeError('wire type %d' % wt)
        if pos > len(buf):
            raise DecodeError('truncated field')
        out.append((num, wt, v))
    return out


def first(fields_, num, default=None):
    for n, _, v in fields_:
        if n == num:
            return v
    return default


def all_of(fields_, num):
    return [v for n, _, v in fields_ if n == num]


class Reply:
    """A decoded Envelope from the coordinator."""

    def __init__(self, payload):
        self.raw = payload
        f = decode(payload)
        self.protocol_version = first(f, 1, 0)
        bodies = [(n, v) for n, wt, v in f if n != 1 and wt == LEN]
        if len(bodies) != 1:
            raise DecodeError('an envelope with %d bodies' % len(bodies))
        self.body_num, body = bodies[0]
        self.kind = ENVELOPE_NAMES.get(self.body_num, str(self.body_num))
        self.body = decode(body)

    @property
    def error_code(self):
        return first(self.body, 1, 0) if self.kind == 'error' else None

    @property
    def error_message(self):
        if self.kind != 'error':
            return None
        return first(self.body, 2, b'').decode('utf-8', 'replace')

    @property
    def error_message_bytes(self):
        return first(self.body, 2, b'') if self.kind == 'error' else None

    def __repr__(self):
        if self.kind == 'error':
            code = self.error_code
            return 'Error{%s, %r}' % (ERROR_NAMES[code] if code < len(ERROR_NAMES) else code,
                                      self.error_message)
        return '%s{%d fields}' % (self.kind, len(self.body))
