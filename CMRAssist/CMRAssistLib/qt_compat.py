"""The one place that chooses the Qt binding: Slicer's PythonQt ``qt`` inside Slicer, PySide6 elsewhere (tests).

Panels use only classes that exist in both, through the names below, plain ``signal.connect`` and no custom
signals (PythonQt has none). They are written as Slicer code is: PythonQt exposes every ``Q_PROPERTY`` as an
attribute that hides the getter of the same name (``combo.count``, ``label.text``, ``button.enabled = False``);
the tests run the panels under PySide6 patched to the same rules (``tests/module/pythonqt_rules.py``).
"""

try:  # inside Slicer
    import qt as _qt

    QtCore = QtGui = QtWidgets = _qt
    BINDING = "PythonQt"
except ImportError:  # tests and tools outside Slicer
    from PySide6 import QtCore, QtGui, QtWidgets

    BINDING = "PySide6"

Qt = QtCore.Qt
QObject = QtCore.QObject
QSettings = QtCore.QSettings
QTimer = QtCore.QTimer
QProcess = QtCore.QProcess
QEventLoop = QtCore.QEventLoop
QSize = QtCore.QSize
QUrl = QtCore.QUrl

QBrush = QtGui.QBrush
QColor = QtGui.QColor
QDesktopServices = QtGui.QDesktopServices
QIcon = QtGui.QIcon
QKeySequence = QtGui.QKeySequence
QImage = QtGui.QImage
QPixmap = QtGui.QPixmap

QAbstractItemView = QtWidgets.QAbstractItemView
QApplication = QtWidgets.QApplication
QCheckBox = QtWidgets.QCheckBox
QComboBox = QtWidgets.QComboBox
QFormLayout = QtWidgets.QFormLayout
QGroupBox = QtWidgets.QGroupBox
QHBoxLayout = QtWidgets.QHBoxLayout
QLabel = QtWidgets.QLabel
QLineEdit = QtWidgets.QLineEdit
QListView = QtWidgets.QListView
QListWidget = QtWidgets.QListWidget
QListWidgetItem = QtWidgets.QListWidgetItem
QMessageBox = QtWidgets.QMessageBox
QProgressBar = QtWidgets.QProgressBar
QPushButton = QtWidgets.QPushButton
QRadioButton = QtWidgets.QRadioButton
QTableWidget = QtWidgets.QTableWidget
QTableWidgetItem = QtWidgets.QTableWidgetItem
QVBoxLayout = QtWidgets.QVBoxLayout
QWidget = QtWidgets.QWidget
QDoubleSpinBox = QtWidgets.QDoubleSpinBox


def ask_yes_no(parent, title: str, question: str) -> bool:
    """A modal yes/no question (the panels take it as a callable, so tests can answer it)."""
    answer = QMessageBox.question(parent, title, question, QMessageBox.Yes | QMessageBox.No)
    return answer == QMessageBox.Yes
