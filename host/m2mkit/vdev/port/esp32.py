# Stand-in of the ESP32 port's `esp32` module: NVS (ports/esp32/esp32_nvs.c) over nvs.json in the
# state folder. Errors are OSError(-esp_err_t), as check_esp_err() in ports/esp32/mphalport.c raises
# them; codes from ESP-IDF components/nvs_flash/include/nvs.h. Key and namespace names hold at most
# 15 characters (NVS_KEY_NAME_MAX_SIZE 16 with the NUL); for a namespace the stand-in answers
# ESP_ERR_NVS_KEY_TOO_LONG too (assumed: not checked against nvs_open's code).
import json

import _m2m_sim as S
import _m2m_table as T

_NOT_FOUND = -0x1102  # ESP_ERR_NVS_NOT_FOUND
_TYPE_MISMATCH = -0x1103  # ESP_ERR_NVS_TYPE_MISMATCH
_KEY_TOO_LONG = -0x1109  # ESP_ERR_NVS_KEY_TOO_LONG
_INVALID_LENGTH = -0x110C  # ESP_ERR_NVS_INVALID_LENGTH: get_blob into a buffer that is too small


def _name(s):
    if not isinstance(s, str):
        raise TypeError("can't convert %s to str" % type(s).__name__)
    if len(s) > 15:
        raise OSError(_KEY_TOO_LONG)
    return s


def _load():
    raw = S.load(T.NVS)
    try:
        return json.loads(raw.decode()) if raw else {}
    except ValueError:
        return {}


class NVS:
    def __init__(self, namespace):
        self._ns = _name(namespace)
        self._pending = {}  # written but not committed: on the port, visible to this handle at once

    def _get(self, key, kind):
        key = _name(key)
        if key in self._pending:
            v = self._pending[key]
        else:
            v = _load().get(self._ns, {}).get(key)
        if v is None:
            raise OSError(_NOT_FOUND)
        if v[0] != kind:
            raise OSError(_TYPE_MISMATCH)
        return v[1]

    def set_i32(self, key, value):
        value = int(value)
        if not -0x80000000 <= value <= 0x7FFFFFFF:
            raise OverflowError("overflow converting long int to machine word")
        self._pending[_name(key)] = ["i32", value]

    def get_i32(self, key):
        return self._get(key, "i32")

    def set_blob(self, key, value):
        self._pending[_name(key)] = ["blob", bytes(value).hex()]

    def get_blob(self, key, buf):
        data = bytes.fromhex(self._get(key, "blob"))
        if len(data) > len(buf):
            raise OSError(_INVALID_LENGTH)
        buf[:len(data)] = data
        return len(data)

    def erase_key(self, key):
        key = _name(key)
        self._kind(key)  # OSError when absent
        self._pending[key] = None

    def _kind(self, key):
        v = self._pending[key] if key in self._pending else _load().get(self._ns, {}).get(key)
        if v is None:
            raise OSError(_NOT_FOUND)
        return v[0]

    def commit(self):
        allns = _load()
        d = allns.setdefault(self._ns, {})
        for k, v in self._pending.items():
            if v is None:
                d.pop(k, None)
            else:
                d[k] = v
        self._pending = {}
        S.store(T.NVS, json.dumps(allns))


def gpio_deep_sleep_hold(enable):
    # modesp32.c esp32_gpio_deep_sleep_hold: gpio_deep_sleep_hold_en() / _dis(); see machine.deepsleep
    import machine

    machine._deep_sleep_hold = bool(enable)
