"""The fraud-detection handbook's baseline feature transformation (Le Borgne et al., "Reproducible
Machine Learning for Credit Card Fraud Detection", chapter 3.4), re-run with pandas on the
transactions pipelines/fraud.sql wrote: the independent computation its features are checked
against.

    python fraud_features.py TRANSACTIONS.jsonl OUT.jsonl

The functions are the handbook's, with its column names; only reading and writing differ.
"""

import sys
import warnings

import pandas as pd

# pandas 3 warns that the handbook's '7d' should be '7D'; the code is kept as the handbook has it.
warnings.simplefilter("ignore")


def is_weekend(tx_datetime):
    weekday = tx_datetime.weekday()
    return int(weekday >= 5)


def is_night(tx_datetime):
    return int(tx_datetime.hour <= 6)


def get_customer_spending_behaviour_features(customer_transactions, windows_size_in_days=[1, 7, 30]):
    customer_transactions = customer_transactions.sort_values("TX_DATETIME")
    customer_transactions.index = customer_transactions.TX_DATETIME
    for window_size in windows_size_in_days:
        SUM_AMOUNT_TX_WINDOW = customer_transactions["TX_AMOUNT"].rolling(str(window_size) + "d").sum()
        NB_TX_WINDOW = customer_transactions["TX_AMOUNT"].rolling(str(window_size) + "d").count()
        AVG_AMOUNT_TX_WINDOW = SUM_AMOUNT_TX_WINDOW / NB_TX_WINDOW
        customer_transactions["CUSTOMER_ID_NB_TX_" + str(window_size) + "DAY_WINDOW"] = list(NB_TX_WINDOW)
        customer_transactions["CUSTOMER_ID_AVG_AMOUNT_" + str(window_size) + "DAY_WINDOW"] = list(AVG_AMOUNT_TX_WINDOW)
    customer_transactions.index = customer_transactions.TRANSACTION_ID
    return customer_transactions


def get_count_risk_rolling_window(terminal_transactions, delay_period=7, windows_size_in_days=[1, 7, 30], feature="TERMINAL_ID"):
    terminal_transactions = terminal_transactions.sort_values("TX_DATETIME")
    terminal_transactions.index = terminal_transactions.TX_DATETIME
    NB_FRAUD_DELAY = terminal_transactions["TX_FRAUD"].rolling(str(delay_period) + "d").sum()
    NB_TX_DELAY = terminal_transactions["TX_FRAUD"].rolling(str(delay_period) + "d").count()
    for window_size in windows_size_in_days:
        NB_FRAUD_DELAY_WINDOW = terminal_transactions["TX_FRAUD"].rolling(str(delay_period + window_size) + "d").sum()
        NB_TX_DELAY_WINDOW = terminal_transactions["TX_FRAUD"].rolling(str(delay_period + window_size) + "d").count()
        NB_FRAUD_WINDOW = NB_FRAUD_DELAY_WINDOW - NB_FRAUD_DELAY
        NB_TX_WINDOW = NB_TX_DELAY_WINDOW - NB_TX_DELAY
        RISK_WINDOW = NB_FRAUD_WINDOW / NB_TX_WINDOW
        terminal_transactions[feature + "_NB_TX_" + str(window_size) + "DAY_WINDOW"] = list(NB_TX_WINDOW)
        terminal_transactions[feature + "_RISK_" + str(window_size) + "DAY_WINDOW"] = list(RISK_WINDOW)
    terminal_transactions.index = terminal_transactions.TRANSACTION_ID
    # Replace NA values with 0 (all undefined risk scores where NB_TX_WINDOW is 0)
    terminal_transactions.fillna(0, inplace=True)
    return terminal_transactions


def main(source, target):
    transactions_df = pd.read_json(source, lines=True)
    transactions_df.columns = [c.upper() for c in transactions_df.columns]
    transactions_df["TX_DATETIME"] = pd.to_datetime(transactions_df["TX_DATETIME"])
    transactions_df["TX_DURING_WEEKEND"] = transactions_df.TX_DATETIME.apply(is_weekend)
    transactions_df["TX_DURING_NIGHT"] = transactions_df.TX_DATETIME.apply(is_night)
    transactions_df = transactions_df.groupby("CUSTOMER_ID", group_keys=False)[list(transactions_df.columns)].apply(
        lambda x: get_customer_spending_behaviour_features(x, windows_size_in_days=[1, 7, 30])
    )
    transactions_df = transactions_df.sort_values("TX_DATETIME").reset_index(drop=True)
    transactions_df = transactions_df.groupby("TERMINAL_ID", group_keys=False)[list(transactions_df.columns)].apply(
        lambda x: get_count_risk_rolling_window(x, delay_period=7, windows_size_in_days=[1, 7, 30], feature="TERMINAL_ID")
    )
    transactions_df = transactions_df.sort_values("TX_DATETIME").reset_index(drop=True)
    transactions_df.columns = [c.lower() for c in transactions_df.columns]
    transactions_df["tx_datetime"] = transactions_df["tx_datetime"].dt.strftime("%Y-%m-%d %H:%M:%S")
    transactions_df.to_json(target, orient="records", lines=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
